"""A faster decoder for stored events, in eventsourcing's own JSON format."""

from __future__ import annotations

from typing import Any

import orjson
from eventsourcing.persistence import JSONTranscoder, TranscodingNotRegisteredError

_LEAVES = frozenset({str, int, float, bool, type(None)})


def tags_in(data: bytes) -> int:
    """At least the number of tagged values in stored JSON (more if a text reads like a tag)."""
    # A tag's key is always the bytes "_type_": json never escapes them, and a quote inside a
    # string is escaped, so the count never falls short.
    return data.count(b'"_type_"')


class OrjsonTranscoder(JSONTranscoder):
    """Encodes as JSONTranscoder does; decodes with orjson, then restores tagged values.

    Encoding stays with the json module: orjson would write UUIDs and Enums natively, never
    calling the registered transcodings, so they would not decode to what was saved (measured:
    a correct tagging walk in Python costs what orjson saves). Decoding is safe to speed up:
    {"_type_", "_data_"} objects are turned back into values exactly as JSONTranscoder does.
    """

    def decode(self, data: bytes) -> Any:
        decoded = orjson.loads(data)
        # An event's tags are nearly all top-level values (its timestamp, a datetime field):
        # untag those, and walk the whole value (lists of decisions, say) only when the bytes
        # hold more tags than were found; a text that merely reads "_type_" only costs the walk.
        tags = tags_in(data)
        if tags == 0:
            return decoded
        if type(decoded) is dict:
            names = self.names
            for key, value in decoded.items():
                if type(value) is dict and len(value) == 2 and "_data_" in value:
                    name, data_ = value.get("_type_"), value["_data_"]
                    # What _untag(value) does; an unknown name is left to the walk, to raise.
                    transcoding = names.get(name) if type(name) is str else None
                    if transcoding is not None and type(data_) in _LEAVES:
                        decoded[key] = transcoding.decode(data_)
                        tags -= 1
            if tags == 0:
                return decoded
        return self._untag(orjson.loads(data))

    def _untag(self, o: Any) -> Any:
        kind = type(o)
        if kind is dict:
            if len(o) == 2 and "_type_" in o and "_data_" in o:
                transcoding = self.names.get(o["_type_"])
                if transcoding is None:
                    msg = f"Data serialized with name {o['_type_']!r} has no transcoding"
                    raise TranscodingNotRegisteredError(msg)
                return transcoding.decode(self._untag(o["_data_"]))
            # Most values are plain: test their type inline rather than recurse into each.
            return {k: v if type(v) in _LEAVES else self._untag(v) for k, v in o.items()}
        if kind is list:
            return [v if type(v) in _LEAVES else self._untag(v) for v in o]
        return o
