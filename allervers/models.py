"""Imports every model module so that Base.metadata knows all tables (Alembic, tests)."""

from admin import audit as admin_audit  # noqa: F401
from admin import flow_store as admin_flow_store  # noqa: F401
from kernel import sessions as sessions_models  # noqa: F401
from kernel.database import Base
from casework import models as casework_models  # noqa: F401
from conversations import models as conversations_models  # noqa: F401
from conversations import webchat_identity as webchat_identity_models  # noqa: F401
from directory import models as directory_models  # noqa: F401
from followups import models as followups_models  # noqa: F401
from handoff import models as handoff_models  # noqa: F401
from outreach import models as outreach_models  # noqa: F401
from handoff import push as push_models  # noqa: F401

metadata = Base.metadata
