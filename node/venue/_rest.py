"""The REST half of the venue: Binance's spot (``/api/v3``, ``/sapi``) and USD-M (``/fapi``) routes.

Parameters come from the query string only (the adapter sends them there for every method;
a body is never read). Signed routes need ``X-MBX-APIKEY``, a valid ``signature`` over the raw
query (as sent, still percent-encoded) and a ``timestamp`` inside ``recvWindow``; listen-key
routes need the API key header. Errors are ``{"code", "msg"}`` with Binance's codes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from aiohttp import web

from node.venue._model import ApiError
from node.venue._payloads import order_json
from node.venue._payloads import user_trade
from node.venue._replay import wall_ms
from node.venue.auth import split_signed

if TYPE_CHECKING:
    from node.venue.venue import LoopbackVenue

Params = dict[str, str]
Handler = Callable[[Params], Awaitable[Any]]
NONE, KEY, SIGNED = "none", "key", "signed"
_log = logging.getLogger(__name__)


def _dumps(obj: Any) -> str:
    return msgspec.json.encode(obj).decode()


def reply(obj: Any, status: int = 200) -> web.Response:
    return web.json_response(obj, status=status, dumps=_dumps)


class RestApi:
    """Dispatches one HTTP request to its Binance route, with the route's security."""

    def __init__(self, venue: LoopbackVenue) -> None:
        self.v = venue
        self.routes: dict[tuple[str, str], tuple[str, Handler]] = {}
        prefix = "/api/v3" if venue.spec.market == "spot" else "/fapi/v1"
        self._common(prefix)
        if venue.spec.market == "spot":
            self._spot()
        else:
            self._futures()

    def _add(self, method: str, path: str, security: str, handler: Handler) -> None:
        self.routes[(method, path)] = (security, handler)

    def _common(self, prefix: str) -> None:
        """Routes both markets have under their own prefix."""
        for path, security, handler in (
            ("ping", NONE, self._empty),
            ("time", NONE, self._time),
            ("exchangeInfo", NONE, self._exchange_info),
            ("depth", NONE, self._depth),
            ("order", SIGNED, self._query),
            ("openOrders", SIGNED, self._open_orders),
            ("allOrders", SIGNED, self._all_orders),
        ):
            self._add("GET", f"{prefix}/{path}", security, handler)
        self._add("POST", f"{prefix}/order", SIGNED, self._place)
        self._add("DELETE", f"{prefix}/order", SIGNED, self._cancel)

    def _spot(self) -> None:
        a = self._add
        a("GET", "/sapi/v1/asset/tradeFee", SIGNED, self._trade_fee)
        a("GET", "/api/v3/account", SIGNED, self._account)
        a("DELETE", "/api/v3/openOrders", SIGNED, self._cancel_all_spot)
        a("GET", "/api/v3/myTrades", SIGNED, self._trades)

    def _futures(self) -> None:
        a = self._add
        a("GET", "/fapi/v2/account", SIGNED, self._account)
        for version in ("v2", "v3"):
            a("GET", f"/fapi/{version}/positionRisk", SIGNED, self._position_risk)
        a("GET", "/fapi/v1/symbolConfig", SIGNED, self._symbol_config)
        a("GET", "/fapi/v1/positionSide/dual", SIGNED, self._dual)
        a("GET", "/fapi/v1/commissionRate", SIGNED, self._commission_rate)
        a("POST", "/fapi/v1/leverage", SIGNED, self._leverage)
        a("POST", "/fapi/v1/marginType", SIGNED, self._margin_type)
        for method in ("POST", "PUT", "DELETE"):
            a(method, "/fapi/v1/listenKey", KEY, self._listen_key(method))
        a("PUT", "/fapi/v1/order", SIGNED, self._amend)
        a("DELETE", "/fapi/v1/allOpenOrders", SIGNED, self._cancel_all_futures)
        a("DELETE", "/fapi/v1/batchOrders", SIGNED, self._cancel_batch)
        a("GET", "/fapi/v1/userTrades", SIGNED, self._trades)
        for path in ("/fapi/v1/openAlgoOrders", "/fapi/v1/allAlgoOrders"):
            a("GET", path, SIGNED, self._no_algo)
        a("DELETE", "/fapi/v1/algoOpenOrders", SIGNED, self._cancel_all_futures)

    # -- dispatch ---------------------------------------------------------------------------
    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        route = self.routes.get((request.method, request.path))
        if route is None:
            return reply(
                {"code": -1000, "msg": f"No route {request.method} {request.path} on this venue."},
                404,
            )
        security, handler = route
        raw = request.raw_path.split("?", 1)[1] if "?" in request.raw_path else ""
        try:
            if security != NONE and request.headers.get("X-MBX-APIKEY") != self.v.api_key.key:
                raise ApiError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
            if security == SIGNED:
                params = self._verified(raw)
            else:
                params = dict(parse_qsl(raw, keep_blank_values=True))
            return reply(await handler(params))
        except ApiError as exc:
            return reply(exc.body(), exc.status)

    def _verified(self, raw: str) -> Params:
        signed = split_signed(raw)
        if signed is None:
            raise ApiError(
                -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."
            )
        payload, signature = signed
        if not self.v.api_key.verify(payload, signature):
            raise ApiError(-1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(payload, keep_blank_values=True))
        try:
            ts, window = int(params.get("timestamp", "")), int(params.get("recvWindow", "5000"))
        except ValueError:
            raise ApiError(
                -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
            ) from None
        self.v.check_time(ts, window)
        return params

    # -- market and account -----------------------------------------------------------------
    async def _empty(self, p: Params) -> Any:
        return {}

    async def _time(self, p: Params) -> Any:
        return {"serverTime": wall_ms()}

    async def _exchange_info(self, p: Params) -> Any:
        asked = p.get("symbol") or p.get("symbols")
        if asked and self.v.spec.symbol not in asked:
            raise ApiError(-1121, "Invalid symbol.")
        return dict(self.v.spec.exchange_info, serverTime=wall_ms())

    async def _depth(self, p: Params) -> Any:
        if p.get("symbol") != self.v.spec.symbol:
            raise ApiError(-1121, "Invalid symbol.")
        try:
            limit = min(int(p.get("limit", "100")), 5000)
        except ValueError:
            raise ApiError(
                -1102, "Mandatory parameter 'limit' was not sent, was empty/null, or malformed."
            ) from None
        await self.v.before_snapshot()  # let a SUBSCRIBE sent just before land
        snap = await self.v.replayer.snapshot(limit, self.v.config.hold_after_snapshot_s)
        self.v.snapshots_served += 1
        self.v.after_snapshot()
        if self.v.spec.market == "usdm":
            snap["E"] = snap["T"] = self.v.clock_ms()
        return snap

    async def _trade_fee(self, p: Params) -> Any:
        s = self.v.spec
        return [
            {
                "symbol": s.symbol,
                "makerCommission": f"{s.maker_fee:f}",
                "takerCommission": f"{s.taker_fee:f}",
            }
        ]

    async def _account(self, p: Params) -> Any:
        self.v.account_reads += 1
        acct, now = self.v.account, self.v.clock_ms()
        return (
            acct.rest(now)
            if self.v.spec.market == "spot"
            else acct.rest(now, self.v.matcher.mark())
        )  # type: ignore[call-arg]

    async def _position_risk(self, p: Params) -> Any:
        return self.v.account.position_risk(self.v.clock_ms(), self.v.matcher.mark())  # type: ignore[union-attr]

    async def _symbol_config(self, p: Params) -> Any:
        lev = self.v.account.leverage  # type: ignore[union-attr]
        return [
            {
                "symbol": self.v.spec.symbol,
                "marginType": "CROSSED",
                "isAutoAddMargin": False,
                "leverage": lev,
                "maxNotionalValue": "100000000",
            }
        ]

    async def _dual(self, p: Params) -> Any:
        return {"dualSidePosition": False}

    async def _commission_rate(self, p: Params) -> Any:
        s = self.v.spec
        return {
            "symbol": s.symbol,
            "makerCommissionRate": f"{s.maker_fee:f}",
            "takerCommissionRate": f"{s.taker_fee:f}",
        }

    async def _leverage(self, p: Params) -> Any:
        try:
            lev = int(p.get("leverage", ""))
        except ValueError:
            raise ApiError(
                -1102, "Mandatory parameter 'leverage' was not sent, was empty/null, or malformed."
            ) from None
        if not 1 <= lev <= 125:
            raise ApiError(-4028, "Leverage is not valid.")
        self.v.account.leverage = lev  # type: ignore[union-attr]
        return {"leverage": lev, "maxNotionalValue": "100000000", "symbol": self.v.spec.symbol}

    async def _margin_type(self, p: Params) -> Any:
        return {"code": 200, "msg": "success"}

    def _listen_key(self, method: str) -> Handler:
        async def handler(p: Params) -> Any:
            user = self.v.user
            if method == "POST":
                return {"listenKey": user.new_listen_key()}
            if user.listen_key is None:
                raise ApiError(-1125, "This listenKey does not exist.")
            if method == "DELETE":
                user.close_listen_key()
            return {}

        return handler

    # -- orders -----------------------------------------------------------------------------
    async def _place(self, p: Params) -> Any:
        return order_json(self.v.spec, self.v.matcher.place(p))

    async def _cancel(self, p: Params) -> Any:
        order = self.v.matcher.cancel(p)
        out = order_json(self.v.spec, order)
        if self.v.spec.market == "spot":
            out.update(
                origClientOrderId=order.client_id,
                clientOrderId=p.get("newClientOrderId") or order.client_id,
            )
        return out

    async def _amend(self, p: Params) -> Any:
        return order_json(self.v.spec, self.v.matcher.amend(p))

    async def _query(self, p: Params) -> Any:
        return order_json(self.v.spec, self.v.matcher.find(p))

    async def _open_orders(self, p: Params) -> Any:
        return [order_json(self.v.spec, o) for o in self.v.matcher.open_orders()]

    async def _all_orders(self, p: Params) -> Any:
        limit = int(p.get("limit") or 500)
        return [order_json(self.v.spec, o) for o in self.v.matcher.all_orders(limit)]

    async def _trades(self, p: Params) -> Any:
        start = int(p["startTime"]) if p.get("startTime") else None
        end = int(p["endTime"]) if p.get("endTime") else None
        fills = self.v.matcher.trades(start, end, int(p.get("limit") or 500))
        return [user_trade(self.v.spec, f) for f in fills]

    async def _cancel_all_spot(self, p: Params) -> Any:
        orders = self.v.matcher.cancel_all()
        if not orders:
            raise ApiError(-2011, "Unknown order sent.")
        return [order_json(self.v.spec, o) for o in orders]

    async def _cancel_all_futures(self, p: Params) -> Any:
        self.v.matcher.cancel_all()
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    async def _cancel_batch(self, p: Params) -> Any:
        key = "orderIdList" if p.get("orderIdList") else "origClientOrderIdList"
        name = "orderId" if key == "orderIdList" else "origClientOrderId"
        out: list[Any] = []
        for ident in msgspec.json.decode(p.get(key) or "[]"):
            try:
                out.append(order_json(self.v.spec, self.v.matcher.cancel({name: str(ident)})))
            except ApiError as exc:
                out.append(exc.body())
        return out

    async def _no_algo(self, p: Params) -> Any:
        return []
