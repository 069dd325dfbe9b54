from sqlalchemy import create_engine
from sqlalchemy.orm import DeclarativeBase, sessionmaker

from inventory import settings

# one engine for the whole process, made when this module is first imported
engine = create_engine(settings.DATABASE_URL, pool_pre_ping=True)
SessionLocal = sessionmaker(bind=engine)


class Base(DeclarativeBase):
    pass
