"""What the routes need: the open store, the service settings, the projects' file layout and the cache."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from covidal.service.cache import ServiceCache
from covidal.service.project.layout import ProjectLayout
from covidal.service.settings import ServiceSettings
from covidal.service.store.store import Store


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_settings(request: Request) -> ServiceSettings:
    return request.app.state.settings


def get_layout(request: Request) -> ProjectLayout:
    return ProjectLayout(request.app.state.settings.project_dir)


def get_cache(request: Request) -> ServiceCache:
    return request.app.state.cache


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]
CacheDep = Annotated[ServiceCache, Depends(get_cache)]
LayoutDep = Annotated[ProjectLayout, Depends(get_layout)]
