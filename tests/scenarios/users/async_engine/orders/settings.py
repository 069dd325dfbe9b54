from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """The service's settings: ORDERS_* variables (or .env)."""

    model_config = SettingsConfigDict(env_prefix="ORDERS_", env_file=".env", extra="ignore")

    #: postgresql+asyncpg://user:password@host:5432/orders
    db_url: str
    db_pool_size: int = 5
    echo_sql: bool = False


@lru_cache
def get_settings() -> Settings:
    return Settings()
