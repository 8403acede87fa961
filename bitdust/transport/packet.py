"""Signed packets and the stream frame codec.

Wire format (all integers big-endian), fields in this fixed order::

    magic       4 bytes   b"BDP" + version byte 0x01
    Command     u16 length + ASCII       (a Command value)
    OwnerID     u16 length + UTF-8       (idurl of the data owner)
    CreatorID   u16 length + UTF-8       (idurl of the signer)
    PacketID    u16 length + UTF-8
    Date        u64                      (UTC epoch, integer milliseconds)
    RemoteID    u16 length + UTF-8       (idurl of the recipient)
    KeyID       u16 length + UTF-8       (fingerprint of the signing key)
    Payload     u32 length + raw bytes
    Signature   u16 length + raw bytes   (RSA-PSS-SHA256)

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

import dataclasses
import enum
import hashlib
import secrets
import struct
import time

from bitdust.crypto.keys import PrivateKey, PublicKey

MAGIC = b"BDP\x01"
MAX_ID_BYTES = 1024
MAX_SIGNATURE_BYTES = 2048  # an RSA-16384 signature; real keys are far smaller
MAX_DATE_MS = 2**63 - 1
FRAME_HEADER_SIZE = 4
MAX_FRAME_LENGTH = 2**32 - 1

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


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
        payload: bytes,
        remote_id: str,
        private_key: PrivateKey,
        date: int | None = None,
    ) -> Packet:
        """Build and sign a packet; KeyID is the fingerprint of ``private_key``."""
        unsigned = cls(
            command=_to_command(command),
            owner_id=owner_id,
            creator_id=creator_id,
            packet_id=packet_id,
            date=now_ms() if date is None else date,
            payload=bytes(payload),
            remote_id=remote_id,
            key_id=private_key.public_key().fingerprint(),
        )
        return dataclasses.replace(unsigned, signature=private_key.sign_digest(unsigned.digest()))

    def _signed_parts(self) -> list[bytes]:
        return [
            MAGIC,
            _text_field(self.command.value),
            _text_field(self.owner_id),
            _text_field(self.creator_id),
            _text_field(self.packet_id),
            _U64.pack(self.date),
            _text_field(self.remote_id),
            _text_field(self.key_id),
            _U32.pack(len(self.payload)),
            self.payload,
        ]

    def signed_bytes(self) -> bytes:
        """The exact bytes the signature covers: the wire form up to the Signature field."""
        return b"".join(self._signed_parts())

    def digest(self) -> bytes:
        """SHA-256 of :meth:`signed_bytes`, hashed piece by piece: a multi-MB payload is
        not copied once more just to be hashed (hashlib also releases the GIL on it)."""
        hasher = hashlib.sha256()
        for part in self._signed_parts():
            hasher.update(part)
        return hasher.digest()

    def serialize(self) -> bytes:
        return b"".join([*self._signed_parts(), _U16.pack(len(self.signature)), self.signature])

    def verify(self, public_key: PublicKey) -> bool:
        """True only if ``public_key`` signed exactly these fields."""
        return bool(self.signature) and public_key.verify_digest(self.digest(), self.signature)

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
    def parse(cls, data: bytes | bytearray | memoryview, max_size: int) -> Packet:
        """Decode wire bytes; PacketError (and nothing else) on any malformed input.

        Does not verify the signature: the caller knows which identity to check against.
        """
        if len(data) > max_size:
            raise PacketError(f"packet of {len(data)} bytes exceeds the limit of {max_size}")
        reader = _Reader(memoryview(data))
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
        payload = reader.take(payload_len, "Payload")
        signature = reader.blob("Signature", MAX_SIGNATURE_BYTES)
        if reader.remaining:
            raise PacketError(f"{reader.remaining} trailing bytes after the signature")
        return cls(
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


def _text_field(text: str) -> bytes:
    raw = text.encode("utf-8")  # __post_init__ already checked encodability and length
    return _U16.pack(len(raw)) + raw


class _Reader:
    """Bounds-checked cursor over the packet bytes: every overrun is a PacketError."""

    def __init__(self, view: memoryview) -> None:
        self._view = view
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._view) - self._pos

    def take(self, size: int, what: str) -> bytes:
        if size > self.remaining:
            raise PacketError(f"truncated packet: {what} needs {size} bytes, {self.remaining} left")
        chunk = self._view[self._pos : self._pos + size].tobytes()
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
    """

    def __init__(self, max_frame_size: int) -> None:
        if max_frame_size < 0:
            raise ValueError("max_frame_size must be >= 0")
        self._max = max_frame_size
        self._buffer = bytearray()
        self._error: str | None = None

    @property
    def pending(self) -> int:
        """Bytes buffered towards the next, still incomplete, frame."""
        return len(self._buffer)

    @property
    def next_frame_size(self) -> int | None:
        """Length announced by the header of the frame being received, if it arrived."""
        if len(self._buffer) < FRAME_HEADER_SIZE:
            return None
        return int(_U32.unpack_from(self._buffer, 0)[0])

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes from the stream; return every frame they complete, in order."""
        if self._error is not None:
            raise PacketError(f"frame stream already failed: {self._error}")
        self._buffer += data
        frames: list[bytes] = []
        pos = 0
        buffer = self._buffer
        while len(buffer) - pos >= FRAME_HEADER_SIZE:
            (length,) = _U32.unpack_from(buffer, pos)
            if length > self._max:
                self._error = f"frame of {length} bytes exceeds the limit of {self._max}"
                self._buffer = bytearray()
                raise PacketError(self._error)
            end = pos + FRAME_HEADER_SIZE + length
            if end > len(buffer):
                break
            with memoryview(buffer) as view:  # one copy, not a bytearray slice then bytes
                frames.append(view[pos + FRAME_HEADER_SIZE : end].tobytes())
            pos = end
        del buffer[:pos]
        return frames
