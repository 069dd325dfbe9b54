import uuid

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


# Shared properties
class UserBase(SQLModel):
    email: str = Field(unique=True, index=True, max_length=255)
    is_active: bool = True
    full_name: str | None = Field(default=None, max_length=255)
    nickname: str | None = Field(default=None, max_length=64)


# Database model, database table inferred from class name
class User(UserBase, table=True):
    id: int | None = Field(default=None, primary_key=True)


# Shared properties
class ItemBase(SQLModel):
    title: str = Field(min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=255)


# Database model: the id is made by the database (uuid-ossp's uuid_generate_v4())
class Item(ItemBase, table=True):
    id: uuid.UUID | None = Field(
        default=None,
        primary_key=True,
        sa_column_kwargs={"server_default": sa.text("uuid_generate_v4()")},
    )
    owner_id: int = Field(foreign_key="user.id", nullable=False, ondelete="CASCADE")
