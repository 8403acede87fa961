"""Signed packets and the stream frame codec.

Wire format (all integers big-endian), fields in this fixed order::

    magic       4 bytes   b"BDP" + version byte 0x03
    Command     u16 length + ASCII       (a Command value)
    OwnerID     u16 length + UTF-8       (idurl of the data owner)
    CreatorID   u16 length + UTF-8       (idurl of the signer)
    PacketID    u16 length + UTF-8
    Date        u64                      (UTC epoch, integer milliseconds)
    RemoteID    u16 length + UTF-8       (idurl of the recipient)
    KeyID       u16 length + UTF-8       (fingerprint of the creator's packet key)
    Payload     u32 length + raw bytes
    Signature   u16 length + raw bytes   (Ed25519, 64 bytes)

Packets are signed with the creator's Ed25519 *packet key*, not its RSA identity key:
the identity document lists the packet key and its RSA signature certifies it, so a
packet verifies against ``identity.packet_key`` (see :mod:`bitdust.crypto.packet_keys`
for why: RSA-3072 signing cost ~4.7 ms per packet and Ack).

What Ed25519 signs is ``SIGNATURE_DOMAIN + BLAKE3(signed bytes)``, not the signed bytes
themselves. Ed25519 would hash a 1 MB payload with SHA-512 twice over (it cannot be fed
in pieces either). BLAKE3 (the ``blake3`` package, Rust, releases the GIL) hashes
~3.6 GB/s of CPU time here against ~1.3 GB/s for SHA-256 (OpenSSL with the CPU's SHA
instructions) and ~0.7 GB/s for BLAKE2b, measured on a 1 MB buffer; every byte moved is
hashed twice (sender and receiver), so the hash was the largest cost of a signed packet
after the socket itself. The domain string names the format, the hash and the purpose,
so a packet signature can never be replayed as a signature over anything else this key
might sign, nor confused with a signature over a raw 32-byte value.

The signature covers every byte before the Signature field (magic included). Every field
is length-prefixed, so bytes cannot be moved from one field to the next without changing
the signed bytes; and the encoding is canonical (one byte string per packet), so what is
verified is exactly what was parsed. Payload comes last among the signed fields so the
small header fields are read before a large payload is touched.

The Date is integer milliseconds rather than a float: integers serialize exactly, so a
packet re-encoded after parsing gives back the same signed bytes.

Streams (TCP) carry packets as frames: a u32 length, then the packet bytes.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import secrets
import struct
import time
from typing import TYPE_CHECKING

import blake3

from bitdust.crypto.packet_keys import PacketSigningKey, PacketVerifyKey

if TYPE_CHECKING:
    from bitdust.identity.document import Identity

MAGIC = b"BDP\x03"
SIGNATURE_DOMAIN = b"bitdust-packet-v3 ed25519(blake3(signed bytes))\x00"
MAX_ID_BYTES = 1024
MAX_SIGNATURE_BYTES = 2048  # room to spare: Ed25519 signatures are 64 bytes, anything else fails verify
MAX_DATE_MS = 2**63 - 1
FRAME_HEADER_SIZE = 4
COALESCE_BELOW = 16 * 1024  # stream chunks smaller than this are gathered, not kept one by one
COALESCE_TAIL_LIMIT = 256 * 1024
MAX_FRAME_LENGTH = 2**32 - 1

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")

Buffer = bytes | bytearray | memoryview
Payload = Buffer | list[Buffer]
"""What :meth:`Packet.create` takes: the payload, or its parts (joined once, by create)."""


class PacketError(ValueError):
    """Bytes that are not a well-formed packet or frame; the message gives the reason."""


class Command(enum.StrEnum):
    Identity = "Identity"
    Ack = "Ack"
    Fail = "Fail"
    RequestService = "RequestService"
    CancelService = "CancelService"
    Data = "Data"
    Retrieve = "Retrieve"
    ListFiles = "ListFiles"
    Files = "Files"
    DeleteFile = "DeleteFile"
    DeleteBackup = "DeleteBackup"
    Message = "Message"
    Broadcast = "Broadcast"


def payload_size(payload: Payload) -> int:
    return sum(len(part) for part in payload) if isinstance(payload, list) else len(payload)


def now_ms() -> int:
    return int(time.time() * 1000)


def new_packet_id() -> str:
    """Milliseconds plus 48 random bits: unique across nodes, and sorts roughly by time."""
    return f"{now_ms()}-{secrets.token_hex(6)}"


def _to_command(command: Command | str) -> Command:
    try:
        return Command(command)
    except ValueError:
        raise PacketError(f"unknown command {command!r}") from None


@dataclasses.dataclass(frozen=True)
class Packet:
    """One signed packet. Immutable: build with :meth:`create`, read with :meth:`parse`."""

    command: Command
    owner_id: str
    creator_id: str
    packet_id: str
    date: int  # UTC epoch milliseconds
    payload: bytes = dataclasses.field(repr=False)
    remote_id: str
    key_id: str
    signature: bytes = dataclasses.field(default=b"", repr=False)
    # The frame, once :meth:`frame` made it: a sender frames in the signing thread (a 1 MB
    # join kept off the reactor) and a retry re-uses it. Not a field of the packet: no
    # part of equality, and ``dataclasses.replace`` starts without it.
    _frame: bytes | None = dataclasses.field(default=None, init=False, repr=False, compare=False)
    # The signed bytes before the payload, made once: a packet is hashed when signed or
    # verified and joined when serialized, and encoding ten fields each time was a tenth
    # of the CPU time of a small packet. Parsing keeps the header as it came.
    _header: bytes | None = dataclasses.field(default=None, init=False, repr=False, compare=False)
    # BLAKE3 of the signed bytes, once computed: a big packet is parsed and hashed in a
    # pool thread, and its signature checked later against the creator's key.
    _digest: bytes | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Checked here so create() can never build a packet that parse() would refuse.
        object.__setattr__(self, "command", _to_command(self.command))
        for name in ("owner_id", "creator_id", "packet_id", "remote_id", "key_id"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise PacketError(f"{name} must be str, got {type(value).__name__}")
            try:
                raw = value.encode("utf-8")
            except UnicodeEncodeError:
                raise PacketError(f"{name} is not encodable as UTF-8") from None
            if len(raw) > MAX_ID_BYTES:
                raise PacketError(f"{name} is longer than {MAX_ID_BYTES} bytes")
        if isinstance(self.date, bool) or not isinstance(self.date, int) or not 0 <= self.date <= MAX_DATE_MS:
            raise PacketError(f"date must be non-negative integer milliseconds, got {self.date!r}")
        if not isinstance(self.payload, bytes):
            raise PacketError(f"payload must be bytes, got {type(self.payload).__name__}")
        if len(self.payload) > MAX_FRAME_LENGTH:
            raise PacketError("payload is larger than 4 GiB")
        if not isinstance(self.signature, bytes) or len(self.signature) > MAX_SIGNATURE_BYTES:
            raise PacketError(f"signature must be bytes of at most {MAX_SIGNATURE_BYTES}")

    @classmethod
    def create(
        cls,
        command: Command | str,
        owner_id: str,
        creator_id: str,
        packet_id: str,
        payload: Payload,
        remote_id: str,
        private_key: PacketSigningKey,
        date: int | None = None,
    ) -> Packet:
        """Build, sign and frame a packet; KeyID is the fingerprint of the packet key.

        ``payload`` may come in parts (a piece's header, then the piece): they are joined
        here, so a caller that signs in a thread joins there too. Framed here because
        every packet made is sent, and its frame is what the transports carry: a sender
        makes a big packet in the CPU pool, so the 1 MB join of its frame is done there
        too, not later on the reactor by the outbox.
        Refuses an RSA key loudly: a packet signed with the identity key would only be
        dropped by every receiver, far from the mistake.
        """
        if not isinstance(private_key, PacketSigningKey):
            raise TypeError(f"packets are signed with the node's packet key (PacketSigningKey, "
                            f"node.packet_key), not {type(private_key).__name__}")
        unsigned = cls(
            command=_to_command(command),
            owner_id=owner_id,
            creator_id=creator_id,
            packet_id=packet_id,
            date=now_ms() if date is None else date,
            payload=b"".join(payload) if isinstance(payload, list) else bytes(payload),
            remote_id=remote_id,
            key_id=private_key.fingerprint(),
        )
        # ``unsigned`` is ours alone and already validated: set the signature in place
        # rather than validate everything again through dataclasses.replace.
        object.__setattr__(unsigned, "signature", private_key.sign(unsigned.signing_message()))
        unsigned.frame()
        return unsigned

    def _signed_header(self) -> bytes:
        if self._header is None:
            object.__setattr__(self, "_header", b"".join([
                MAGIC,
                _text_field(self.command.value),
                _text_field(self.owner_id),
                _text_field(self.creator_id),
                _text_field(self.packet_id),
                _U64.pack(self.date),
                _text_field(self.remote_id),
                _text_field(self.key_id),
                _U32.pack(len(self.payload)),
            ]))
        assert self._header is not None
        return self._header

    def _signed_parts(self) -> list[bytes]:
        return [self._signed_header(), self.payload]

    def signed_bytes(self) -> bytes:
        """The exact bytes the signature covers: the wire form up to the Signature field."""
        return b"".join(self._signed_parts())

    def digest(self) -> bytes:
        """BLAKE3 of :meth:`signed_bytes`, hashed piece by piece (a multi-MB payload is
        not copied once more just to be hashed), and kept."""
        if self._digest is None:
            hasher = blake3.blake3()
            for part in self._signed_parts():
                hasher.update(part)
            object.__setattr__(self, "_digest", hasher.digest())
        assert self._digest is not None
        return self._digest

    def signing_message(self) -> bytes:
        """What the Ed25519 key really signs: the domain, then :meth:`digest`."""
        return SIGNATURE_DOMAIN + self.digest()

    def frame(self) -> bytes:
        """The packet as the transports carry it: a u32 length, then the wire bytes,
        joined once and kept.

        One bytes object on purpose: TCP writes it as it is, and Twisted sends a single
        buffer without copying it, where a length header written beside the packet made
        it join the two (a 1 MB copy on the reactor for each piece). QUIC sends the bytes
        after the length (:func:`frame_body`)."""
        if self._frame is None:
            header = self._signed_header()
            length = len(header) + len(self.payload) + _U16.size + len(self.signature)
            if length > MAX_FRAME_LENGTH:
                raise PacketError(f"packet of {length} bytes does not fit a 32-bit frame length")
            object.__setattr__(self, "_frame", b"".join(
                [_U32.pack(length), header, self.payload, _U16.pack(len(self.signature)), self.signature]))
        assert self._frame is not None
        return self._frame

    def serialize(self) -> bytes:
        """The wire bytes alone (a copy of :meth:`frame` after its length): for whoever
        stores or inspects a packet; senders hand :meth:`frame` to the transports."""
        return self.frame()[FRAME_HEADER_SIZE:]

    def verify(self, identity_or_key: Identity | PacketVerifyKey) -> bool:
        """True only if the packet key (given, or the one the creator's identity lists)
        signed exactly these fields and the KeyID names that key."""
        key = identity_or_key if isinstance(identity_or_key, PacketVerifyKey) else \
            getattr(identity_or_key, "packet_key", None)
        if not isinstance(key, PacketVerifyKey):
            raise TypeError(f"verify needs an Identity or a PacketVerifyKey, not {type(identity_or_key).__name__}")
        if not self.signature or self.key_id != key.fingerprint():
            return False
        return key.verify(self.signing_message(), self.signature)

    def is_fresh(self, now: float, max_skew_seconds: float) -> bool:
        """True if Date is within ``max_skew_seconds`` of ``now`` (epoch seconds) either way.

        Both directions count: a date far in the future is as suspect as an old one
        (a replay prepared in advance, or a badly wrong clock).
        """
        return abs(now * 1000.0 - self.date) <= max_skew_seconds * 1000.0

    @property
    def date_seconds(self) -> float:
        return self.date / 1000.0

    def __str__(self) -> str:
        return (
            f"Packet[{self.command.value}({self.packet_id}) {self.creator_id} -> {self.remote_id}, "
            f"{len(self.payload)} bytes]"
        )

    @classmethod
    def parse(cls, data: Buffer | Chunks, max_size: int) -> Packet:
        """Decode wire bytes (whole, or as the :class:`Chunks` a stream delivered them
        in); PacketError (and nothing else) on any malformed input.

        Does not verify the signature: the caller knows which identity to check against.
        The payload is the one copy made of a big packet's bytes.
        """
        if len(data) > max_size:
            raise PacketError(f"packet of {len(data)} bytes exceeds the limit of {max_size}")
        reader = _Reader.over(data)
        if reader.take(len(MAGIC), "magic") != MAGIC:
            raise PacketError("bad magic: not a BitDust packet (or an unsupported version)")
        command = _to_command(reader.text("Command"))
        owner_id = reader.text("OwnerID")
        creator_id = reader.text("CreatorID")
        packet_id = reader.text("PacketID")
        (date,) = _U64.unpack(reader.take(_U64.size, "Date"))
        remote_id = reader.text("RemoteID")
        key_id = reader.text("KeyID")
        (payload_len,) = _U32.unpack(reader.take(_U32.size, "Payload length"))
        header = reader.consumed()
        payload = reader.take(payload_len, "Payload")
        signature = reader.blob("Signature", MAX_SIGNATURE_BYTES)
        if reader.remaining:
            raise PacketError(f"{reader.remaining} trailing bytes after the signature")
        packet = cls(
            command=command,
            owner_id=owner_id,
            creator_id=creator_id,
            packet_id=packet_id,
            date=date,
            payload=payload,
            remote_id=remote_id,
            key_id=key_id,
            signature=signature,
        )
        # Every field is length-prefixed and the text fields decoded strictly, so these
        # are exactly the bytes _signed_header would build again.
        object.__setattr__(packet, "_header", header)
        return packet


def _text_field(text: str) -> bytes:
    raw = text.encode("utf-8")  # __post_init__ already checked encodability and length
    return _U16.pack(len(raw)) + raw


class _Reader:
    """Bounds-checked cursor over the packet bytes, held in one or more parts: every
    overrun is a PacketError. A field that spans parts is joined from views of them."""

    def __init__(self, parts: list[memoryview]) -> None:
        self._parts = parts
        self._size = sum(len(part) for part in parts)
        self._pos = 0

    @classmethod
    def over(cls, data: Buffer | Chunks) -> _Reader:
        return cls(data.parts if isinstance(data, Chunks) else [memoryview(data)])

    @property
    def remaining(self) -> int:
        return self._size - self._pos

    def consumed(self) -> bytes:
        """Every byte read so far."""
        return self._bytes(0, self._pos)

    def take(self, size: int, what: str) -> bytes:
        if size > self.remaining:
            raise PacketError(f"truncated packet: {what} needs {size} bytes, {self.remaining} left")
        chunk = self._bytes(self._pos, self._pos + size)
        self._pos += size
        return chunk

    def blob(self, what: str, limit: int) -> bytes:
        (size,) = _U16.unpack(self.take(_U16.size, f"{what} length"))
        if size > limit:
            raise PacketError(f"{what} of {size} bytes exceeds {limit}")
        return self.take(size, what)

    def text(self, what: str) -> str:
        raw = self.blob(what, MAX_ID_BYTES)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PacketError(f"{what} is not valid UTF-8: {exc.reason}") from None

    def _bytes(self, start: int, end: int) -> bytes:
        first = self._parts[0]
        if end <= len(first):  # the usual case: a whole packet, or a header in the first part
            return first[start:end].tobytes()
        views, offset = [], 0
        for part in self._parts:
            low, high = max(start - offset, 0), min(end - offset, len(part))
            if low < high:
                views.append(part[low:high])
            offset += len(part)
            if offset >= end:
                break
        # bytes.join lets other threads run while it copies a MB or more
        return b"".join(views)


def has_magic(data: Buffer | Chunks) -> bool:
    """True if ``data`` starts like a packet of this format: the cheap test that keeps
    junk from costing a hop to a thread before :meth:`Packet.parse` refuses it."""
    reader = _Reader.over(data)
    return reader.remaining >= len(MAGIC) and reader.take(len(MAGIC), "magic") == MAGIC


class Chunks:
    """The bytes of one frame, still in the pieces the stream delivered them in.

    Joining a multi-MB frame is left to :meth:`Packet.parse`, which copies the payload
    out of the pieces once; the gateway parses big packets in a pool thread, so the
    reactor that cut the frame never copies it at all."""

    __slots__ = ("_size", "parts")

    def __init__(self, parts: list[memoryview]) -> None:
        self.parts = parts
        self._size = sum(len(part) for part in parts)

    def __len__(self) -> int:
        return self._size

    def __bytes__(self) -> bytes:
        return b"".join(self.parts)


def frame_body(frame: bytes) -> memoryview:
    """The packet bytes of a frame made by :meth:`Packet.frame` or :func:`encode_frame`,
    without a copy; PacketError if the length does not match (bytes that were never
    framed would put a stream out of sync far from the mistake)."""
    if len(frame) < FRAME_HEADER_SIZE or _U32.unpack_from(frame)[0] != len(frame) - FRAME_HEADER_SIZE:
        raise PacketError(f"{len(frame)} bytes are not one frame (u32 length, then that many bytes)")
    return memoryview(frame)[FRAME_HEADER_SIZE:]


def encode_frame(packet_bytes: bytes) -> bytes:
    """Prefix a packet with its u32 length so a stream reader can cut it out again."""
    if len(packet_bytes) > MAX_FRAME_LENGTH:
        raise PacketError(f"frame of {len(packet_bytes)} bytes does not fit a 32-bit length")
    return _U32.pack(len(packet_bytes)) + packet_bytes


class FrameDecoder:
    """Cuts a byte stream into frames made by :func:`encode_frame`.

    An oversize length is refused as soon as its 4-byte header arrives, so a peer cannot
    make us hold a huge frame in memory. After any error the stream is out of sync and
    the decoder refuses all further input: the transport should close the connection.

    Incoming chunks are kept as they came (a list, not a growing bytearray) and a frame
    is joined from them once, when its last byte arrives: one copy per byte (or none
    here: a big frame can be handed out as :class:`Chunks`, for its reader to join in
    another thread). Appending 64 KB reads to a bytearray re-allocated and copied a 1 MB
    frame several times over, then copied it once more to hand out ``bytes``. Small
    chunks are the exception: they are gathered into a bytearray tail, so a peer that
    dribbles a frame in one-byte segments cannot make us hold a Python object per byte.
    """

    def __init__(self, max_frame_size: int, chunks_from: int | None = None) -> None:
        """``chunks_from``: frames of this many bytes or more are handed out unjoined,
        as :class:`Chunks` (the reader joins them where it parses them)."""
        if max_frame_size < 0:
            raise ValueError("max_frame_size must be >= 0")
        self._max = max_frame_size
        self._chunks_from = chunks_from
        self._chunks: collections.deque[Buffer] = collections.deque()
        self._pending = 0
        self._frame_size: int | None = None  # body length of the frame being received
        self._error: str | None = None

    @property
    def pending(self) -> int:
        """Bytes buffered towards the next, still incomplete, frame."""
        return self._pending

    @property
    def next_frame_size(self) -> int | None:
        """Length announced by the header of the frame being received, if it arrived."""
        if self._frame_size is None and self._pending >= FRAME_HEADER_SIZE:
            return int(_U32.unpack(self._peek_header())[0])
        return self._frame_size

    def feed(self, data: bytes) -> list[bytes | Chunks]:
        """Add bytes from the stream; return every frame they complete, in order."""
        if self._error is not None:
            raise PacketError(f"frame stream already failed: {self._error}")
        if data:
            tail = self._chunks[-1] if self._chunks else None
            if len(data) >= COALESCE_BELOW:
                self._chunks.append(data if isinstance(data, bytes) else bytes(data))  # kept: must not change
            elif isinstance(tail, bytearray) and len(tail) < COALESCE_TAIL_LIMIT:
                tail += data
            else:
                self._chunks.append(bytearray(data))
            self._pending += len(data)
        frames: list[bytes | Chunks] = []
        while True:
            if self._frame_size is None:
                if self._pending < FRAME_HEADER_SIZE:
                    break
                (length,) = _U32.unpack(self._peek_header())
                if length > self._max:
                    self._error = f"frame of {length} bytes exceeds the limit of {self._max}"
                    self._chunks.clear()
                    self._pending = 0
                    raise PacketError(self._error)
                self._frame_size = length
            if self._pending < FRAME_HEADER_SIZE + self._frame_size:
                break
            self._cut(FRAME_HEADER_SIZE)
            parts = self._cut(self._frame_size)
            if self._chunks_from is not None and self._frame_size >= self._chunks_from:
                frames.append(Chunks([p if isinstance(p, memoryview) else memoryview(p) for p in parts]))
            elif len(parts) == 1 and isinstance(parts[0], bytes):
                frames.append(parts[0])  # exactly one whole chunk: no copy at all
            else:
                frames.append(b"".join(parts))
            self._frame_size = None
        return frames

    def _peek_header(self) -> bytes:
        head = b""
        for chunk in self._chunks:
            head += bytes(chunk[: FRAME_HEADER_SIZE - len(head)])
            if len(head) == FRAME_HEADER_SIZE:
                break
        return head

    def _cut(self, size: int) -> list[Buffer]:
        """Take ``size`` bytes off the front, as the chunks (or views of them) they were."""
        parts: list[Buffer] = []
        left = size
        while left:
            chunk = self._chunks[0]
            if len(chunk) <= left:
                parts.append(self._chunks.popleft())
                left -= len(chunk)
            else:
                # A view, not a bytearray, stays behind: the tail that may still grow is
                # always a bytearray nobody holds a view of.
                view = chunk if isinstance(chunk, memoryview) else memoryview(chunk)
                parts.append(view[:left])
                self._chunks[0] = view[left:]
                left = 0
        self._pending -= size
        return parts
