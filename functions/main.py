"""The registry: re-exports every function of the suite, and nothing else.

Each domain is imported only when this instance serves one of its functions
(see ``flowsuite.registry``); deploy and the emulator import them all. A function
with a module of its own (``registry.OWN_MODULES``) or a document trigger
(``<domain>_on_*``, in its domain's ``triggers`` module) is served from that module alone.
The cyclic garbage collector pauses while it imports (``flowsuite.startup``).
"""

from flowsuite import startup as _startup

_startup.begin()  # no cyclic collection while this instance imports its functions (flowsuite/startup.py)
from flowsuite.registry import serve_alone as _serve_alone
from flowsuite.registry import wanted as _wanted

_serve_alone(globals())
if _wanted("identity"):
    from flowsuite.identity.functions import *  # noqa: F403
if _wanted("orders"):
    from flowsuite.orders.functions import *  # noqa: F403
if _wanted("payments"):
    from flowsuite.payments.functions import *  # noqa: F403
if _wanted("notifications"):
    from flowsuite.notifications.functions import *  # noqa: F403
if _wanted("ops"):
    from flowsuite.ops.functions import *  # noqa: F403
# Domains added by `make domain name=...` (devtools/domain.py); `make undomain` takes them out.
# >>> generated domains
# <<< generated domains
_startup.done()
