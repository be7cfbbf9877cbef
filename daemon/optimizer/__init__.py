"""The optimizer: bottlenecks (and the compiler's cache plans) -> reviewable config-change recommendations.

Modules: `models` (ConfigChange, RecommendationSpec, fingerprint), `settings` (current values read
from the server), `context`, one module per area (`kv_cache`, `quantization`, `batching`),
`cache_plan` (from a CompileResult dict) and `engine` (ordering, de-duplicated storage).
"""

from daemon.optimizer.cache_plan import recommend_from_compile
from daemon.optimizer.context import Context
from daemon.optimizer.engine import prioritize, recommend, upsert_recommendations
from daemon.optimizer.models import ConfigChange, RecommendationSpec
from daemon.optimizer.settings import Settings, read_settings

__all__ = [
    "ConfigChange",
    "Context",
    "RecommendationSpec",
    "Settings",
    "prioritize",
    "read_settings",
    "recommend",
    "recommend_from_compile",
    "upsert_recommendations",
]
