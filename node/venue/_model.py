"""The venue's order and fill records, and Binance's error reply."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from node.venue.queue import BUY
from training.errors import NhmmError

ZERO = Decimal(0)
POST_ONLY_SPOT = (-2010, "Order would immediately match and take.")
POST_ONLY_FUTURES = (
    -5022,
    "Due to the order could not be executed as maker, the Post Only order will be rejected.",
)
UNKNOWN_ORDER = (-2011, "Unknown order sent.")
NO_SUCH_ORDER = (-2013, "Order does not exist.")


class ApiError(NhmmError):
    """A request Binance would refuse: answered as ``{"code", "msg"}`` with HTTP ``status``."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg, field=str(code))
        self.code, self.msg, self.status = code, msg, status

    def body(self) -> dict[str, int | str]:
        return {"code": self.code, "msg": self.msg}


@dataclass(eq=False)
class Order:
    """One order as the venue holds it (prices and sizes in ``Decimal``)."""

    order_id: int
    client_id: str
    side: int
    type: str  # LIMIT | LIMIT_MAKER | MARKET
    tif: str  # GTC | IOC | FOK | GTX | GTD
    price: Decimal
    qty: Decimal
    time_ms: int
    reduce_only: bool = False
    good_till: int = 0
    quote_qty: Decimal = ZERO  # spot MARKET by quote amount (quoteOrderQty)
    executed: Decimal = ZERO
    quote: Decimal = ZERO  # cumulative quote transacted
    status: str = "NEW"
    update_ms: int = 0

    @property
    def side_name(self) -> str:
        return "BUY" if self.side == BUY else "SELL"

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.executed

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    @property
    def post_only(self) -> bool:
        return self.type == "LIMIT_MAKER" or self.tif == "GTX"

    @property
    def avg_price(self) -> Decimal:
        return self.quote / self.executed if self.executed else ZERO


@dataclass(frozen=True)
class Fill:
    """One execution of an own order."""

    trade_id: int
    order: Order
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    maker: bool
    time_ms: int
    realized_pnl: Decimal = ZERO
