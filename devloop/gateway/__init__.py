"""The gateway, in named stages: core (prepare, call, stream, embed), admission (budgets,
rate limits, reservations), metering (usage -> cost -> ledger row, metrics) and stream
(the stream accumulator). ``from devloop.gateway import Gateway, CallResult`` is the API."""

from devloop.gateway.admission import BudgetExceeded
from devloop.gateway.core import Gateway
from devloop.gateway.prepared import CallResult, Prepared
from devloop.gateway.stream import StreamCall

__all__ = ["BudgetExceeded", "CallResult", "Gateway", "Prepared", "StreamCall"]
