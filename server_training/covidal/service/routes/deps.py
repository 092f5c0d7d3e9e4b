"""What every route needs: the open store and the service settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from covidal.service.settings import ServiceSettings
from covidal.service.store.store import Store


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_settings(request: Request) -> ServiceSettings:
    return request.app.state.settings


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]
