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

Streams (TCP) carry packets as frames: a u32 length, then the packet bytes. Neither end
joins a big frame: a sender hands the socket the frame's parts (length and header, the
payload, the signature) in one vectored write, and a receiver reads a big frame straight
into a buffer of its own size and parses it in place (the payload is a read-only view of
that buffer). For 1 MB packets each of those joins cost about as much CPU as the
kernel's own copy of the bytes.
"""

from __future__ import annotations

import dataclasses
import enum
import secrets
import struct
import time
from typing import TYPE_CHECKING

import blake3

from bitdust.crypto.packet_keys import PacketSigningKey, PacketVerifyKey
from bitdust.util.memory import buffer_to_fill

if TYPE_CHECKING:
    from bitdust.identity.document import Identity

MAGIC = b"BDP\x03"
SIGNATURE_DOMAIN = b"bitdust-packet-v3 ed25519(blake3(signed bytes))\x00"
MAX_ID_BYTES = 1024
MAX_SIGNATURE_BYTES = 2048  # room to spare: Ed25519 signatures are 64 bytes, anything else fails verify
MAX_DATE_MS = 2**63 - 1
FRAME_HEADER_SIZE = 4
SCRATCH_SIZE = 64 * 1024
"""A stream's read buffer for small frames; a frame that does not fit gets one of its own."""
MIN_READ = 4096
FIRST_BUFFER = 1024 * 1024
BUFFER_GROWTH = 64
"""A big frame's buffer starts at FIRST_BUFFER, or BUFFER_GROWTH times what arrived of
the frame if more, and grows to BUFFER_GROWTH times what arrived when full (up to the
frame's length, which it is from the start for the usual 1-4 MB packets): memory to
zero and hold, for a peer that announces a huge frame and sends little of it, stays a
bounded multiple of what it sent."""
MAX_FRAME_LENGTH = 2**32 - 1

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")

Buffer = bytes | bytearray | memoryview
Payload = Buffer | list[Buffer]
"""What :meth:`Packet.create` takes: the payload, or its parts (joined once, by create)."""
PayloadBytes = bytes | memoryview
"""A packet's payload: bytes, or a read-only view of the frame it was received in."""


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


_COMMANDS: dict[str, Command] = {command.value: command for command in Command}


def _to_command(command: Command | str) -> Command:
    found = _COMMANDS.get(command) if isinstance(command, str) else None
    if found is None:
        raise PacketError(f"unknown command {command!r}")
    return found


@dataclasses.dataclass(frozen=True)
class Packet:
    """One signed packet. Immutable: build with :meth:`create`, read with :meth:`parse`."""

    command: Command
    owner_id: str
    creator_id: str
    packet_id: str
    date: int  # UTC epoch milliseconds
    payload: PayloadBytes = dataclasses.field(repr=False)
    remote_id: str
    key_id: str
    signature: bytes = dataclasses.field(default=b"", repr=False)
    # The frame, once :meth:`frame` made it (a retry re-uses it). Not a field of the
    # packet: no part of equality, and ``dataclasses.replace`` starts without it.
    _frame: Frame | None = dataclasses.field(default=None, init=False, repr=False, compare=False)
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
        if not isinstance(self.payload, bytes) and not (isinstance(self.payload, memoryview)
                                                        and self.payload.readonly and self.payload.c_contiguous):
            raise PacketError(f"payload must be bytes or a read-only view, got {type(self.payload).__name__}")
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
        """Build and sign a packet; KeyID is the fingerprint of the packet key.

        ``payload`` may come in parts (a piece's header, then the piece): they are joined
        here, so a caller that signs in a thread joins there too.
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

    def _signed_parts(self) -> list[PayloadBytes]:
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

    def frame(self) -> Frame:
        """The packet as the transports carry it (u32 length, then the wire bytes), made
        once and kept. A big payload stays a part of its own, so it is never copied into
        a frame: TCP writes the parts with one vectored write."""
        if self._frame is None:
            header = self._signed_header()
            length = len(header) + len(self.payload) + _U16.size + len(self.signature)
            if length > MAX_FRAME_LENGTH:
                raise PacketError(f"packet of {length} bytes does not fit a 32-bit frame length")
            tail = _U16.pack(len(self.signature)) + self.signature
            if len(self.payload) < SCRATCH_SIZE:  # small: one buffer is cheaper to write than three
                parts: tuple[Buffer, ...] = (b"".join([_U32.pack(length), header, self.payload, tail]),)
            else:
                parts = (_U32.pack(length) + header, self.payload, tail)
            object.__setattr__(self, "_frame", Frame(parts, length))
        assert self._frame is not None
        return self._frame

    def serialize(self) -> bytes:
        """The wire bytes, joined: for whoever stores or inspects a packet; senders hand
        :meth:`frame` to the transports."""
        return b"".join(self.frame().body_parts())

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
    def parse(cls, data: bytes | bytearray, max_size: int) -> Packet:
        """Decode wire bytes; PacketError (and nothing else) on any malformed input.

        Does not verify the signature: the caller knows which identity to check against.
        A ``bytearray`` is taken over, not copied: it is a frame a stream read in place
        (:class:`FrameDecoder`), and the payload becomes a read-only view of it, so the
        caller must not change it afterwards. From ``bytes`` the payload is a copy.
        """
        size = len(data)
        if size > max_size:
            raise PacketError(f"packet of {size} bytes exceeds the limit of {max_size}")
        view = memoryview(data).toreadonly()
        if size < len(MAGIC):
            raise _truncated("magic", len(MAGIC), size)
        if view[: len(MAGIC)] != MAGIC:
            raise PacketError("bad magic: not a BitDust packet (or an unsupported version)")
        texts: list[str] = []
        pos = _read_texts(view, size, len(MAGIC), ("Command", "OwnerID", "CreatorID", "PacketID"), texts)
        if pos + _U64.size > size:
            raise _truncated("Date", _U64.size, size - pos)
        (date,) = _U64.unpack_from(view, pos)
        if date > MAX_DATE_MS:
            raise PacketError(f"date {date} is out of range")
        pos = _read_texts(view, size, pos + _U64.size, ("RemoteID", "KeyID"), texts)
        if pos + _U32.size > size:
            raise _truncated("Payload length", _U32.size, size - pos)
        (payload_len,) = _U32.unpack_from(view, pos)
        pos += _U32.size
        header = view[:pos].tobytes()
        if pos + payload_len > size:
            raise _truncated("Payload", payload_len, size - pos)
        payload = view[pos : pos + payload_len]
        pos += payload_len
        if pos + _U16.size > size:
            raise _truncated("Signature length", _U16.size, size - pos)
        (signature_len,) = _U16.unpack_from(view, pos)
        if signature_len > MAX_SIGNATURE_BYTES:
            raise PacketError(f"Signature of {signature_len} bytes exceeds {MAX_SIGNATURE_BYTES}")
        pos += _U16.size
        if pos + signature_len > size:
            raise _truncated("Signature", signature_len, size - pos)
        if pos + signature_len != size:
            raise PacketError(f"{size - pos - signature_len} trailing bytes after the signature")
        command = _to_command(texts[0])
        # Built without __init__: every field was checked as it was read (lengths, UTF-8,
        # command, date), and __post_init__ repeating it was a fifth of a small packet's
        # parse. The header is kept as it came: every field is length-prefixed and the
        # text fields decoded strictly, so these are the bytes _signed_header would build.
        packet = object.__new__(cls)
        packet.__dict__.update(
            command=command, owner_id=texts[1], creator_id=texts[2], packet_id=texts[3], date=date,
            payload=payload if isinstance(data, bytearray) else payload.tobytes(),
            remote_id=texts[4], key_id=texts[5], signature=view[pos:].tobytes(),
            _frame=None, _header=header, _digest=None)
        return packet


def _truncated(what: str, size: int, left: int) -> PacketError:
    return PacketError(f"truncated packet: {what} needs {size} bytes, {left} left")


def _read_texts(view: memoryview, size: int, pos: int, names: tuple[str, ...], into: list[str]) -> int:
    """Read u16-length-prefixed UTF-8 fields from ``pos``; the position after them."""
    for what in names:
        if pos + _U16.size > size:
            raise _truncated(f"{what} length", _U16.size, size - pos)
        length = view[pos] << 8 | view[pos + 1]
        pos += _U16.size
        if length > MAX_ID_BYTES:
            raise PacketError(f"{what} of {length} bytes exceeds {MAX_ID_BYTES}")
        if pos + length > size:
            raise _truncated(what, length, size - pos)
        try:
            into.append(str(view[pos : pos + length], "utf-8"))
        except UnicodeDecodeError as exc:
            raise PacketError(f"{what} is not valid UTF-8: {exc.reason}") from None
        pos += length
    return pos


def _text_field(text: str) -> bytes:
    raw = text.encode("utf-8")  # __post_init__ already checked encodability and length
    return _U16.pack(len(raw)) + raw


@dataclasses.dataclass(frozen=True)
class Frame:
    """One packet as a stream carries it: a u32 length, then the packet bytes, kept in
    the parts they were made in (:meth:`Packet.frame`); transports write the parts, so
    the bytes are never joined on their way out."""

    parts: tuple[Buffer, ...]
    body_size: int
    """The packet's bytes, after the length."""

    def __post_init__(self) -> None:
        # The length header must say what follows, or a stream would go out of sync far
        # from the mistake.
        first = self.parts[0] if self.parts else b""
        total = sum(len(part) for part in self.parts)
        if len(first) < FRAME_HEADER_SIZE or _U32.unpack_from(first)[0] != self.body_size \
                or total != FRAME_HEADER_SIZE + self.body_size:
            raise PacketError(f"{total} bytes are not one frame (u32 length, then that many bytes)")

    @classmethod
    def of(cls, packet_bytes: bytes) -> Frame:
        """A frame of bytes that are already one packet (or, in tests, are not)."""
        return cls((encode_frame(packet_bytes),), len(packet_bytes))

    def __len__(self) -> int:
        return FRAME_HEADER_SIZE + self.body_size

    def body_parts(self) -> list[memoryview]:
        """The packet bytes after the length, as views of the parts (what QUIC sends)."""
        first = memoryview(self.parts[0])[FRAME_HEADER_SIZE:]
        return [first, *(memoryview(part) for part in self.parts[1:])]


def encode_frame(packet_bytes: bytes) -> bytes:
    """Prefix a packet with its u32 length so a stream reader can cut it out again."""
    if len(packet_bytes) > MAX_FRAME_LENGTH:
        raise PacketError(f"frame of {len(packet_bytes)} bytes does not fit a 32-bit length")
    return _U32.pack(len(packet_bytes)) + packet_bytes


class FrameDecoder:
    """Cuts a byte stream into frames, with the stream read straight into place.

    A socket reader asks :meth:`buffer` where its next bytes go and tells :meth:`filled`
    how many it wrote there (asyncio's ``BufferedProtocol``, ``recv_into``); :meth:`feed`
    does both for bytes already read. Small frames share one scratch buffer, many per
    read, and come out as ``bytes`` (one small copy each). A frame too big for the
    scratch gets a ``bytearray`` of its own size as soon as its length arrives; the
    socket reads into it and it is handed out as it is, so its bytes are copied once,
    by the kernel (:meth:`Packet.parse` takes it over without a copy). Only a frame
    longer than its first buffer (see ``BUFFER_GROWTH``) is copied, when it grows.

    An oversize length is refused as soon as its 4-byte header arrives, so a peer cannot
    make us hold a huge frame. After any error the stream is out of sync and the decoder
    refuses all further input: the transport should close the connection. Memory held
    is bounded by the scratch plus one frame; :attr:`held` counts a big frame's buffer
    whole from the moment it is allocated, for the transport's budget.
    """

    def __init__(self, max_frame_size: int, scratch_size: int = SCRATCH_SIZE) -> None:
        if max_frame_size < 0:
            raise ValueError("max_frame_size must be >= 0")
        if scratch_size < MIN_READ:
            raise ValueError(f"scratch_size must be >= {MIN_READ}")
        self._max = max_frame_size
        self._scratch = bytearray(scratch_size)
        self._start = self._end = 0  # the unread bytes of the scratch
        self._big: bytearray | None = None  # the frame being read in place (or its start)
        self._big_size = 0  # that frame's length
        self._big_have = 0
        self._error: str | None = None

    @property
    def pending(self) -> int:
        """Bytes received towards the next, still incomplete, frame (its header included)."""
        big = FRAME_HEADER_SIZE + self._big_have if self._big is not None else 0
        return self._end - self._start + big

    @property
    def held(self) -> int:
        """Bytes of memory held for incomplete frames: a big frame's buffer counts whole."""
        return self._end - self._start + (len(self._big) if self._big is not None else 0)

    @property
    def next_frame_size(self) -> int | None:
        """Length announced by the header of the frame being received, if it arrived."""
        if self._big is not None:
            return self._big_size
        if self._end - self._start >= FRAME_HEADER_SIZE:
            return int(_U32.unpack_from(self._scratch, self._start)[0])
        return None

    def buffer(self) -> memoryview:
        """Where the next bytes of the stream go (never empty)."""
        self._check()
        if self._big is not None:
            return memoryview(self._big)[self._big_have :]
        free = len(self._scratch) - self._end
        if self._start and free < max(MIN_READ, self._missing()):
            kept = bytes(self._scratch[self._start : self._end])  # a partial small frame: < scratch
            self._scratch[: len(kept)] = kept
            self._start, self._end = 0, len(kept)
        return memoryview(self._scratch)[self._end :]

    def filled(self, size: int) -> list[bytes | bytearray]:
        """``size`` bytes were written at the start of :meth:`buffer`: the frames they complete."""
        self._check()
        if self._big is not None:
            self._big_have += size
            if self._big_have < len(self._big):
                return []
            if self._big_have < self._big_size:
                self._big = self._grown(self._big, self._big_have)
                return []
            frame, self._big, self._big_have = self._big, None, 0
            return [frame]
        self._end += size
        return self._cut()

    def feed(self, data: Buffer) -> list[bytes | bytearray]:
        """Add bytes already read from the stream; return every frame they complete."""
        source = memoryview(data)
        frames: list[bytes | bytearray] = []
        while source:
            target = self.buffer()
            size = min(len(target), len(source))
            target[:size] = source[:size]
            source = source[size:]
            frames.extend(self.filled(size))
        return frames

    def discard(self) -> int:
        """Drop what is held for incomplete frames, failed or not (the stream was given up
        on), and return how many bytes that was, for the transport's budget. Buffers are
        still given afterwards, so reads that land late land somewhere."""
        held = self.held
        self._big, self._big_size, self._big_have = None, 0, 0
        self._start = self._end = 0
        self._error = None
        return held

    def _check(self) -> None:
        if self._error is not None:
            raise PacketError(f"frame stream already failed: {self._error}")

    def _missing(self) -> int:
        """Bytes still to come before the frame begun in the scratch is whole."""
        have = self._end - self._start
        if have < FRAME_HEADER_SIZE:
            return FRAME_HEADER_SIZE - have
        return FRAME_HEADER_SIZE + int(_U32.unpack_from(self._scratch, self._start)[0]) - have

    def _grown(self, start: Buffer, have: int) -> bytearray:
        """A buffer for the big frame, holding the ``have`` bytes of it already here."""
        size = min(self._big_size, max(FIRST_BUFFER, BUFFER_GROWTH * have))
        buffer = buffer_to_fill(size)  # not zeroed: handed out only once every byte arrived
        buffer[:have] = memoryview(start)[:have]
        return buffer

    def _cut(self) -> list[bytes | bytearray]:
        frames: list[bytes | bytearray] = []
        view = memoryview(self._scratch)
        while self._end - self._start >= FRAME_HEADER_SIZE:
            (length,) = _U32.unpack_from(self._scratch, self._start)
            if length > self._max:
                self._error = f"frame of {length} bytes exceeds the limit of {self._max}"
                self._start = self._end = 0
                raise PacketError(self._error)
            body = self._start + FRAME_HEADER_SIZE
            if FRAME_HEADER_SIZE + length > len(self._scratch):
                # Too big for the scratch, so its start is all the scratch holds.
                have = self._end - body
                self._big_size = length
                self._big = self._grown(view[body : self._end], have)
                self._big_have = have
                self._start = self._end = 0
                break
            if self._end - body < length:
                break
            frames.append(view[body : body + length].tobytes())
            self._start = body + length
        if self._start == self._end:
            self._start = self._end = 0
        return frames
