"""Handlers for tests/test_dataclasses.py: dataclass args and results, written
the way a typed handler module is (``from __future__ import annotations``, so
every annotation is a string the registry resolves when the command registers)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Optional

from pyvisor import command

if TYPE_CHECKING:  # never imported at run time: ctx's annotation does not resolve there
    from pyvisor import Context


@dataclass
class GreetArgs:
    name: str
    greeting: str = "Hello"


@dataclass
class GreetResult:
    text: str
    length: int
    args_type: str


@dataclass
class Address:
    street: str
    city: str


@dataclass
class Item:
    sku: str
    qty: int = 1


@dataclass
class Order:
    to: Address
    items: List[Item]
    gift: Optional[Address] = None
    by_tag: Dict[str, Item] = field(default_factory=dict)
    note: str = ""


@dataclass
class Tick:
    n: int
    label: str


@command("dc_greet")
def dc_greet(args: GreetArgs, ctx: Context) -> GreetResult:
    text = "%s, %s!" % (args.greeting, args.name)
    return GreetResult(text, len(text), type(args).__name__)


@command("dc_order")
def dc_order(args: Order, ctx: Context) -> dict:
    """What the handler was given, as plain types (the classes it saw included)."""
    return {"to": type(args.to).__name__, "city": args.to.city,
            "items": [[type(i).__name__, i.sku, i.qty] for i in args.items],
            "gift": None if args.gift is None else [type(args.gift).__name__, args.gift.city],
            "by_tag": {k: [type(v).__name__, v.sku] for k, v in args.by_tag.items()},
            "echo": args}


@command("dc_async_greet")
async def dc_async_greet(args: GreetArgs, ctx: Context) -> GreetResult:
    await asyncio.sleep(0)
    text = "%s, %s!" % (args.greeting, args.name)
    return GreetResult(text, len(text), type(args).__name__)


@command("dc_ticks")
def dc_ticks(args: GreetArgs, ctx: Context):
    """A generator of dataclass chunks; its return value is one too."""
    for i in range(3):
        yield Tick(i, args.name)
    return GreetResult("done", 4, type(args).__name__)


@command("dc_async_ticks")
async def dc_async_ticks(args: GreetArgs, ctx: Context):
    for i in range(3):
        await asyncio.sleep(0)
        yield Tick(i, args.name)


@command("dc_bad_result")
def dc_bad_result(args, ctx):
    return {"items": [Item({"a", "set"})]}


@command("dc_untyped")
def dc_untyped(args, ctx):
    """No annotation: args as they came."""
    return {"type": type(args).__name__, "args": args}
