"""WAV decoding for speech recognition: PCM (8/16/24/32-bit), float, mu-law and A-law, mono
or multi-channel (one channel is chosen), resampled when the rate is not one Vosk is fed.

Audio comes out as 16-bit little-endian mono PCM in chunks, so a long message is decoded a
piece at a time. numpy does the sample work (no ``audioop``, which Python 3.13 removed).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from transcription.errors import CorruptAudioError, TruncatedAudioError, UnsupportedAudioError

# Twilio records at 8 kHz; wideband phones and uploads are often 16 kHz. Vosk takes both
# directly; anything else is resampled to 16 kHz here.
NATIVE_RATES = (8000, 16000)
RESAMPLE_TO = 16000
# Dual-channel recordings put the parent call leg, which for our inbound line is the
# caller, on the first channel.
CALLER_CHANNEL = 0

_FORMAT_PCM, _FORMAT_FLOAT, _FORMAT_ALAW, _FORMAT_MULAW, _FORMAT_EXTENSIBLE = 1, 3, 6, 7, 0xFFFE
_ENCODINGS = {_FORMAT_PCM: "pcm", _FORMAT_FLOAT: "float", _FORMAT_ALAW: "alaw", _FORMAT_MULAW: "mulaw"}


@dataclass(frozen=True)
class WavInfo:
    """What a WAV header says, checked against the bytes that are really there."""

    encoding: str
    channels: int
    sample_rate: int
    bits: int
    data_offset: int
    data_size: int

    @property
    def block_align(self) -> int:
        """Bytes per frame (one sample of every channel)."""
        return self.channels * self.bits // 8

    @property
    def frames(self) -> int:
        """Number of whole frames of audio."""
        return self.data_size // self.block_align

    @property
    def duration_s(self) -> float:
        """Length of the audio in seconds."""
        return self.frames / self.sample_rate

    @property
    def output_rate(self) -> int:
        """The rate of the PCM that :func:`pcm16_chunks` yields."""
        return self.sample_rate if self.sample_rate in NATIVE_RATES else RESAMPLE_TO


def read_header(data: bytes) -> WavInfo:
    """Parse and check a WAV header; raise an :class:`AudioError` subclass if it is unusable."""
    if len(data) < 12:
        raise CorruptAudioError(f"not a WAV file: only {len(data)} bytes")
    if data[0:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise CorruptAudioError("not a WAV file: no RIFF/WAVE header")
    fmt: tuple[str, int, int, int] | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk_id == b"fmt ":
            if body + min(size, 16) > len(data) or size < 16:
                raise TruncatedAudioError("the WAV format chunk is cut short")
            fmt = _parse_fmt(data[body:body + size])
        elif chunk_id == b"data":
            if fmt is None:
                raise CorruptAudioError("WAV data chunk comes before its format chunk")
            available = len(data) - body
            if size > available:
                raise TruncatedAudioError(
                    f"truncated audio: the header promises {size} bytes of sound but only {available} are present")
            encoding, channels, rate, bits = fmt
            return WavInfo(encoding, channels, rate, bits, body, size)
        pos = body + size + (size & 1)  # RIFF chunks are padded to an even length
    if fmt is None:
        raise TruncatedAudioError("truncated audio: the file ends before the WAV format chunk")
    raise TruncatedAudioError("truncated audio: the file ends before the WAV data chunk")


def _parse_fmt(chunk: bytes) -> tuple[str, int, int, int]:
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", chunk, 0)
    if tag == _FORMAT_EXTENSIBLE:
        if len(chunk) < 26:
            raise CorruptAudioError("WAVE_FORMAT_EXTENSIBLE header without its sub-format")
        tag = struct.unpack_from("<H", chunk, 24)[0]  # first two bytes of the sub-format GUID
    encoding = _ENCODINGS.get(tag)
    if encoding is None:
        raise UnsupportedAudioError(f"unsupported WAV encoding (format tag {tag:#06x}); use PCM or mu-law")
    if channels < 1 or rate < 1000 or rate > 384000:
        raise CorruptAudioError(f"implausible WAV header: {channels} channels at {rate} Hz")
    allowed = {"pcm": (8, 16, 24, 32), "float": (32, 64), "alaw": (8,), "mulaw": (8,)}[encoding]
    if bits not in allowed:
        raise UnsupportedAudioError(f"unsupported {encoding} sample size: {bits} bits")
    if block_align != channels * bits // 8:
        raise CorruptAudioError(f"inconsistent WAV header: block align {block_align} for {channels}x{bits} bits")
    return encoding, channels, rate, bits


def _g711_tables() -> tuple[np.ndarray, np.ndarray]:
    codes = np.arange(256, dtype=np.int32)
    u = ~codes & 0xFF
    mag = (((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 0x07)
    ulaw = np.where(u & 0x80, 0x84 - mag, mag - 0x84)
    a = codes ^ 0x55
    exp, mant = (a >> 4) & 0x07, a & 0x0F
    amag = np.where(exp == 0, (mant << 4) + 8, ((mant << 4) + 0x108) << np.maximum(exp - 1, 0))
    alaw = np.where(a & 0x80, amag, -amag)
    return ulaw.astype(np.int16), alaw.astype(np.int16)


_ULAW, _ALAW = _g711_tables()  # constant lookup tables, never mutated


def _to_int16(raw: bytes, info: WavInfo, channel: int) -> np.ndarray:
    """Decode whole frames to int16 samples of one channel."""
    if info.encoding in ("mulaw", "alaw"):
        codes = np.frombuffer(raw, dtype=np.uint8)
        samples = (_ULAW if info.encoding == "mulaw" else _ALAW)[codes]
    elif info.encoding == "float":
        floats = np.frombuffer(raw, dtype="<f4" if info.bits == 32 else "<f8")
        samples = (np.clip(floats, -1.0, 1.0) * 32767).astype(np.int16)
    elif info.bits == 8:
        samples = ((np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
    elif info.bits == 16:
        samples = np.frombuffer(raw, dtype="<i2")
    elif info.bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        samples = (((b[:, 2] << 24) | (b[:, 1] << 16) | (b[:, 0] << 8)) >> 16).astype(np.int16)
    else:
        samples = (np.frombuffer(raw, dtype="<i4") >> 16).astype(np.int16)
    return samples.reshape(-1, info.channels)[:, channel]


class Resampler:
    """Streaming resampler: windowed-sinc low-pass (when lowering the rate), then linear
    interpolation, carrying its state from one chunk to the next."""

    def __init__(self, src_rate: int, dst_rate: int, taps: int = 63) -> None:
        self.step = src_rate / dst_rate
        self._pos = 0.0
        self._buf = np.zeros(0, dtype=np.float32)
        self._taps: np.ndarray | None = None
        if dst_rate < src_rate:
            cutoff = 0.45 * dst_rate / src_rate  # cycles per input sample, below the new Nyquist
            n = np.arange(taps) - (taps - 1) / 2
            kernel = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(taps)
            self._taps = (kernel / kernel.sum()).astype(np.float32)
            self._history = np.zeros(taps - 1, dtype=np.float32)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Resample one chunk; returns as many output samples as the input so far allows."""
        x = samples.astype(np.float32)
        if self._taps is not None:
            padded = np.concatenate([self._history, x])
            self._history = padded[len(padded) - (len(self._taps) - 1):]
            x = np.convolve(padded, self._taps, mode="valid").astype(np.float32)
        buf = np.concatenate([self._buf, x])
        last = len(buf) - 1
        count = int((last - self._pos) // self.step) + 1 if last >= self._pos else 0
        idx = self._pos + self.step * np.arange(count)
        i = idx.astype(np.int64)
        frac = (idx - i).astype(np.float32)
        out = buf[i] * (1 - frac) + buf[np.minimum(i + 1, last)] * frac
        next_pos = self._pos + count * self.step
        drop = min(int(next_pos), len(buf))
        self._buf, self._pos = buf[drop:], next_pos - drop
        return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


def pcm16_chunks(data: bytes, info: WavInfo | None = None, *, channel: int = CALLER_CHANNEL,
                 chunk_s: float = 0.5) -> Iterator[bytes]:
    """Yield 16-bit mono PCM at ``info.output_rate`` in chunks of about ``chunk_s`` seconds."""
    info = info or read_header(data)
    channel = min(channel, info.channels - 1)
    frames_per_chunk = max(1, int(info.sample_rate * chunk_s))
    resampler = Resampler(info.sample_rate, info.output_rate) if info.output_rate != info.sample_rate else None
    view = memoryview(data)[info.data_offset:info.data_offset + info.frames * info.block_align]
    step = frames_per_chunk * info.block_align
    for start in range(0, len(view), step):
        samples = _to_int16(bytes(view[start:start + step]), info, channel)
        if resampler is not None:
            samples = resampler.process(samples)
        if len(samples):
            yield samples.astype("<i2").tobytes()
