"""A small OpenAI-compatible transcription server (POST /v1/audio/transcriptions,
multipart) around pocketsphinx and the en-us model its PyPI wheel ships, for
trying SecondMe's voice notes offline on the CPU. Install it with
scripts/stt-local.sh, then:
  .venv/stt/bin/python scripts/stt-server.py [--port 8282]
With PyAV (`av`, which the script installs) it reads what FFmpeg reads in the
usual audio containers: WhatsApp's voice notes (Ogg Opus), mp3, m4a, webm,
flac, wav...; without it, WAV only (PCM, 8 to 32 bits, any rate, any
channels), and anything else is refused with a 415. Either way the audio is
converted to the 16 kHz mono 16-bit the model takes, at most MAX_SECONDS of it.
English only. Requests are decoded one at a time (one decoder on the CPU).
Neither the audio nor what it said is logged: only sizes, lengths and times.
"""

import argparse
import array
import io
import json
import os
import sys
import threading
import time
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    from pocketsphinx import Decoder, set_loglevel
except ImportError:
    sys.exit("stt-server: pocketsphinx is missing: run scripts/stt-local.sh, then .venv/stt/bin/python scripts/stt-server.py")

try:
    import av
except ImportError:
    # WAV is still read, by the pure-Python path below.
    av = None

MODEL_RATE = 16000
# The client refuses audio over 25 MiB; the rest is room for the form around it.
MAX_BODY = 26 << 20
FORMATS = ("json", "verbose_json", "text")
# A compressed file expands: 25 MiB of Opus is hours of speech. Past this the
# request is refused rather than held in memory (57.6 MB of PCM) and decoded.
MAX_SECONDS = 30 * 60
# The containers audio comes in (OpenAI's list of files, WhatsApp's voice notes).
# FFmpeg reads many more, and some (playlists) would open other files or URLs.
CONTAINERS = "ogg,mp3,mov,mp4,m4a,3gp,matroska,webm,wav,flac,aac,amr"


class Refused(Exception):
    """A request this server cannot serve: its status and a message without the audio."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def parse_form(content_type, body):
    """The parts of a multipart/form-data body, {name: (filename, bytes)}, byte-exact."""
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        raise Refused(400, "the body must be multipart/form-data")
    boundary = None
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip().strip('"')
    if not boundary:
        raise Refused(400, "the multipart body has no boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    chunks = body.split(b"\r\n" + delimiter)
    if not chunks[0].startswith(delimiter):
        raise Refused(400, "the multipart body does not start with its boundary")
    chunks[0] = chunks[0][len(delimiter):]
    parts = {}
    for chunk in chunks:
        if chunk.startswith(b"--"):
            break
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise Refused(400, "a multipart part has no header end")
        name, filename = disposition(head)
        if name is not None:
            parts[name] = (filename, data)
    return parts


def disposition(head):
    """The `name` and `filename` of a part's Content-Disposition header."""
    name = filename = None
    for line in head.decode("latin-1").split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() != "content-disposition":
            continue
        for param in value.split(";")[1:]:
            k, _, v = param.strip().partition("=")
            v = v.strip().strip('"')
            if k.lower() == "name":
                name = v
            elif k.lower() == "filename":
                filename = v
    return name, filename


def read_audio(data):
    """(16 kHz mono 16-bit PCM bytes, seconds) of the audio file `data`."""
    return read_any(data) if av is not None else read_wav(data)


def check_length(seconds):
    """Refused(413) past MAX_SECONDS of audio."""
    if seconds > MAX_SECONDS:
        raise Refused(413, f"the audio is over {MAX_SECONDS} s")


def read_any(data):
    """(16 kHz mono 16-bit PCM bytes, seconds) of the first audio stream of a file
    in one of CONTAINERS, decoded and resampled by FFmpeg; Refused(415) otherwise."""
    pcm, seconds = bytearray(), 0.0
    try:
        with av.open(
            io.BytesIO(data),
            container_options={"format_whitelist": CONTAINERS},
            metadata_errors="ignore",
        ) as container:
            if not container.streams.audio:
                raise Refused(415, "the file holds no audio")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=MODEL_RATE)
            for frame in container.decode(container.streams.audio[0]):
                if frame.sample_rate > 0:
                    seconds += frame.samples / frame.sample_rate
                check_length(seconds)
                append_pcm(pcm, resampler.resample(frame))
            append_pcm(pcm, resampler.resample(None))
    except (av.FFmpegError, ValueError) as e:
        # FFmpeg's reason (a fixed phrase such as "Invalid data found"), never the data.
        reason = getattr(e, "strerror", None) or type(e).__name__
        raise Refused(415, f"not audio read here ({CONTAINERS}): {reason}") from None
    if not pcm:
        raise Refused(415, "the file holds no audio samples")
    return bytes(pcm), seconds


def append_pcm(pcm, frames):
    """Appends the samples of the packed mono s16 `frames` (their planes are padded)."""
    for frame in frames:
        pcm += memoryview(frame.planes[0])[: frame.samples * 2]


def read_wav(data):
    """(16 kHz mono 16-bit PCM bytes, seconds) of a WAV file; Refused(415) otherwise."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            if rate > 0:
                check_length(w.getnframes() / rate)
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as e:
        raise Refused(415, f"only WAV (PCM) audio is read here, as av is not installed (scripts/stt-local.sh): {e}") from None
    if channels < 1 or rate < 1 or width not in (1, 2, 3, 4):
        raise Refused(415, f"unsupported WAV: {channels} channels, {width * 8} bits, {rate} Hz")
    samples = to_int16(frames, width)
    seconds = len(samples) / channels / rate
    mono = to_mono(samples, channels)
    return resample(mono, rate, MODEL_RATE).tobytes(), seconds


def to_int16(frames, width):
    """Little-endian PCM of `width` bytes (8-bit unsigned, else signed) as 16-bit samples."""
    frames = frames[: len(frames) - len(frames) % width]
    if width == 1:
        return array.array("h", ((b - 128) << 8 for b in frames))
    if width == 2:
        pcm = bytes(frames)
    else:
        # The two most significant bytes of each sample.
        pcm = bytearray(len(frames) // width * 2)
        pcm[0::2] = frames[width - 2 :: width]
        pcm[1::2] = frames[width - 1 :: width]
    samples = array.array("h", pcm)
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def to_mono(samples, channels):
    """The channels' average."""
    if channels == 1:
        return samples
    tracks = [samples[k::channels] for k in range(channels)]
    return array.array("h", (sum(frame) // channels for frame in zip(*tracks)))


def resample(samples, rate, target):
    """`samples` at `target` Hz: down by averaging each output sample's span of
    input (a box filter keeps what is above the new Nyquist from folding back
    into the speech band, which costs a plain interpolation most of its words),
    up by linear interpolation."""
    n = len(samples)
    if rate == target or n == 0:
        return samples
    step = rate / target
    count = int(n / step)
    if step < 1:
        out = array.array("h", bytes(2 * count))
        for i in range(count):
            x = i * step
            j = int(x)
            a = samples[j]
            b = samples[j + 1] if j + 1 < n else a
            out[i] = int(a + (b - a) * (x - j))
        return out
    out = array.array("h", bytes(2 * count))
    for i in range(count):
        a = int(i * step)
        b = max(a + 1, min(n, int((i + 1) * step)))
        out[i] = sum(samples[a:b]) // (b - a)
    return out


class Transcriber:
    """One pocketsphinx decoder, used by one request at a time."""

    def __init__(self):
        set_loglevel("ERROR")
        # Batch normalisation over each whole file: no request's voice shapes the next's.
        self.decoder = Decoder(samprate=MODEL_RATE, cmn="batch")
        self.lock = threading.Lock()

    def transcribe(self, audio):
        """(what the audio file says, lowercase, empty for nothing; its seconds)."""
        # The file is converted inside the lock too: one request's PCM in memory at a time.
        with self.lock:
            pcm, seconds = read_audio(audio)
            d = self.decoder
            d.start_utt()
            d.process_raw(pcm, full_utt=True)
            d.end_utt()
            hyp = d.hyp()
            return (hyp.hypstr.strip() if hyp is not None else ""), seconds


def make_handler(transcriber):
    """The request handler class serving `transcriber`."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "stt-server"

        def do_GET(self):
            if self.path == "/v1/models":
                return self.send_json(200, {"object": "list", "data": [{"id": "pocketsphinx-en-us", "object": "model"}]})
            self.send_json(404, error("not found"))

        def do_POST(self):
            started = time.monotonic()
            if self.path.split("?")[0] != "/v1/audio/transcriptions":
                return self.send_json(404, error("not found"))
            try:
                answer, seconds = self.transcription()
            except Refused as e:
                return self.send_json(e.status, error(e.message))
            self.log_message(
                "transcribed %.1f s of audio in %.2f s", seconds, time.monotonic() - started
            )
            answer()

        def transcription(self):
            """The function sending this request's answer, and the audio's seconds."""
            length = self.headers.get("content-length")
            if length is None or not length.isdigit():
                raise Refused(411, "a Content-Length is needed")
            if int(length) > MAX_BODY:
                raise Refused(413, f"the body is over {MAX_BODY} bytes")
            body = self.rfile.read(int(length))
            form = parse_form(self.headers.get("content-type", ""), body)
            if "file" not in form:
                raise Refused(400, "the form has no file part")
            options = {k: v[1].decode("utf-8", "replace").strip() for k, v in form.items() if k != "file"}
            language = options.get("language", "").lower()
            if language not in ("", "en"):
                raise Refused(400, f"this server transcribes English (en) only, not {language!r}")
            fmt = options.get("response_format") or "json"
            if fmt not in FORMATS:
                raise Refused(400, f"response_format must be one of {', '.join(FORMATS)}")
            text, seconds = transcriber.transcribe(form["file"][1])
            if fmt == "text":
                return (lambda: self.send_body(200, "text/plain; charset=utf-8", text.encode())), seconds
            payload = {"text": text}
            if fmt == "verbose_json":
                payload.update(task="transcribe", language="english", segments=[])
            payload["duration"] = round(seconds, 3)
            return (lambda: self.send_json(200, payload)), seconds

        def send_json(self, status, payload):
            self.send_body(status, "application/json", json.dumps(payload).encode())

        def send_body(self, status, content_type, data):
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_request(self, code="-", size="-"):
            # The request line only: a query string is the client's, never audio.
            self.log_message("%s %s -> %s", self.command, self.path.split("?")[0], code)

    return Handler


def error(message):
    """OpenAI's error body."""
    return {"error": {"message": message, "type": "invalid_request_error"}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("STT_SERVER_PORT", "8282")))
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    transcriber = Transcriber()
    server = ThreadingHTTPServer((args.host, args.port), make_handler(transcriber))
    reads = f"audio by FFmpeg (PyAV {av.__version__})" if av is not None else "WAV only (no PyAV)"
    print(f"stt-server: pocketsphinx en-us on http://{args.host}:{server.server_port}, reading {reads}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
