# The extension's public addresses (EXTENSION_HOMEPAGE, EXTENSION_ICONURL, EXTENSION_SCREENSHOTURLS) from the
# GitHub repository that holds this source tree: -DCOVIDAL_GITHUB_REPOSITORY=owner/name, or else the "origin"
# remote of the checkout when it is a GitHub address. No address is made up: without a repository they stay
# empty with a warning (a local build needs none; the Extensions Index needs real ones).
#
# In: COVIDAL_SOURCE_DIR (the checkout; default: the folder above this file). Out: the three EXTENSION_* variables.

set(COVIDAL_GITHUB_REPOSITORY "" CACHE STRING "owner/name of the extension's GitHub repository")
set(COVIDAL_GITHUB_BRANCH "main" CACHE STRING "branch the icon and screenshot addresses point to")
set(COVIDAL_SCREENSHOTS suggestions.png infection_point.png prediction.png)  # in Resources/Screenshots
if(NOT COVIDAL_SOURCE_DIR)
  get_filename_component(COVIDAL_SOURCE_DIR "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
endif()

set(_covidal_repository "${COVIDAL_GITHUB_REPOSITORY}")
if(NOT _covidal_repository)
  find_program(_covidal_git git)
  if(_covidal_git)
    execute_process(COMMAND "${_covidal_git}" remote get-url origin
      WORKING_DIRECTORY "${COVIDAL_SOURCE_DIR}" OUTPUT_VARIABLE _covidal_origin
      OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(_covidal_origin MATCHES "github\\.com[:/]([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)$")
      string(REGEX REPLACE "\\.git$" "" _covidal_repository "${CMAKE_MATCH_1}")
    endif()
  endif()
endif()

if(_covidal_repository)
  set(_covidal_raw "https://raw.githubusercontent.com/${_covidal_repository}/${COVIDAL_GITHUB_BRANCH}")
  set(EXTENSION_HOMEPAGE "https://github.com/${_covidal_repository}")
  set(EXTENSION_ICONURL "${_covidal_raw}/Resources/CovidActiveLearning.png")
  set(EXTENSION_SCREENSHOTURLS "")
  foreach(_covidal_screenshot IN LISTS COVIDAL_SCREENSHOTS)
    string(APPEND EXTENSION_SCREENSHOTURLS " ${_covidal_raw}/Resources/Screenshots/${_covidal_screenshot}")
  endforeach()
  string(STRIP "${EXTENSION_SCREENSHOTURLS}" EXTENSION_SCREENSHOTURLS)
else()
  message(WARNING "CovidActiveLearning: no GitHub repository known (no -DCOVIDAL_GITHUB_REPOSITORY=owner/name, no "
    "GitHub 'origin' remote): the extension's homepage, icon and screenshot addresses are left empty. Set it "
    "before packaging the extension for the Extensions Index.")
  set(EXTENSION_HOMEPAGE "")
  set(EXTENSION_ICONURL "")
  set(EXTENSION_SCREENSHOTURLS "")
endif()
