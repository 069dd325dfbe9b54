from fastapi import Depends, FastAPI
from sqlmodel import Session, select

from app.core.config import settings
from app.core.db import get_session
from app.models import User

app = FastAPI(title=settings.PROJECT_NAME, openapi_url=f"{settings.API_V1_STR}/openapi.json")


@app.get(f"{settings.API_V1_STR}/utils/health-check/")
def health_check() -> bool:
    return True


@app.get(f"{settings.API_V1_STR}/users/")
def read_users(session: Session = Depends(get_session)) -> list[User]:
    return list(session.exec(select(User)))
