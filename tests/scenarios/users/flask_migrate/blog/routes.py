import sqlalchemy as sa
from flask import Blueprint, jsonify

from blog import db
from blog.models import User

bp = Blueprint("main", __name__)


@bp.route("/health")
def health():
    db.session.execute(sa.text("SELECT 1"))
    return jsonify(status="ok")


@bp.route("/users")
def users():
    return jsonify([u.username for u in db.session.scalars(sa.select(User).order_by(User.username))])
