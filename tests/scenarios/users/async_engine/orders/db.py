from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from orders.settings import get_settings

settings = get_settings()
engine = create_async_engine(settings.db_url, pool_size=settings.db_pool_size, echo=settings.echo_sql)
Session = async_sessionmaker(engine, expire_on_commit=False)
