#!/usr/bin/env bash
# Installs a small offline speech recogniser and a spoken test sample, from PyPI
# only (opt-in: CI never runs this; no root needed):
#  - pocketsphinx, whose wheel ships a US English model (CPU, nothing to compile),
#    served by scripts/stt-server.py;
#  - av (PyAV), whose wheel ships FFmpeg's libraries, so the server reads what
#    WhatsApp sends (Ogg Opus voice notes) and mp3, m4a, webm, flac, wav...;
#  - espeakng-loader, whose wheel ships the eSpeak NG library and its voices,
#    which speaks the test sample .venv/stt/sample.wav (its words in sample.txt),
#    also kept as a voice note as WhatsApp sends it: .venv/stt/sample.ogg (Opus).
# No registry package ships a Whisper model, so this is no Whisper: it shows the
# path end to end, with a recogniser that gets a clear sentence roughly right.
# Everything goes to .venv/stt. Then run:
#   .venv/stt/bin/python scripts/stt-server.py     # listens on 127.0.0.1:8282
#   SECONDME_TEST_STT_URL=http://127.0.0.1:8282 SECONDME_TEST_STT_SAMPLE=.venv/stt/sample.wav \
#     cargo test --test stt_real -- --nocapture     # sample.ogg is found beside it
#   secondme worker --stt-url http://127.0.0.1:8282     # or SECONDME_STT_URL
set -euo pipefail
cd "$(dirname "$0")/.."

POCKETSPHINX_VERSION=5.1.1
ESPEAKNG_LOADER_VERSION=0.2.4
# The last PyAV for Python 3.11 (19 needs 3.12); its abi3 wheel serves later ones too.
AV_VERSION=18.1.0
dir=.venv/stt
# What the sample says: a voice note a twin could be sent.
SAMPLE_TEXT="hello, are you coming to dinner tomorrow?"
# A microphone's hiss, the standard deviation of a seeded Gaussian noise in
# 16-bit steps (about -56 dBFS): a recording is never digitally silent, and
# pocketsphinx, trained on real recordings, hears eSpeak's perfectly clean
# signal badly once it is resampled without aliasing (6 words of 50 heard
# right in ten sentences, against 34 with this hiss).
SAMPLE_HISS=50

if [ ! -x "$dir/bin/python" ]; then
  echo "stt-local: creating $dir"
  python3 -m venv "$dir"
fi
if ! "$dir/bin/python" -c 'import pocketsphinx, espeakng_loader, av' 2>/dev/null; then
  echo "stt-local: installing pocketsphinx==$POCKETSPHINX_VERSION, av==$AV_VERSION and espeakng-loader==$ESPEAKNG_LOADER_VERSION"
  # Wheels only: av built from source would need FFmpeg's headers.
  "$dir/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: \
    "pocketsphinx==$POCKETSPHINX_VERSION" "av==$AV_VERSION" "espeakng-loader==$ESPEAKNG_LOADER_VERSION"
fi

sample="$dir/sample.wav"
recipe="eSpeak NG en-us, 130 words a minute, hiss $SAMPLE_HISS"
if [ ! -s "$sample" ] || [ "$(cat "$dir/sample.txt" 2>/dev/null)" != "$SAMPLE_TEXT" ] \
  || [ "$(cat "$dir/sample.recipe" 2>/dev/null)" != "$recipe" ]; then
  echo "stt-local: speaking the test sample with eSpeak NG"
  "$dir/bin/python" - "$sample" "$SAMPLE_TEXT" "$SAMPLE_HISS" <<'PY'
import array, ctypes, random, sys, wave
import espeakng_loader

out, text, hiss = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
lib = ctypes.CDLL(espeakng_loader.get_library_path())
AUDIO_OUTPUT_SYNCHRONOUS, POS_CHARACTER, CHARS_UTF8, RATE = 2, 1, 1, 1
rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
if rate <= 0:
    sys.exit("stt-local: eSpeak NG did not start")
chunks = []
Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

@Callback
def collect(wav, count, _events):
    if count > 0:
        chunks.append(ctypes.string_at(wav, count * 2))
    return 0

lib.espeak_SetSynthCallback(collect)
if lib.espeak_SetVoiceByName(b"en-us") != 0:
    sys.exit("stt-local: eSpeak NG has no en-us voice")
# A calm pace, as a voice note is spoken (the default is 175 words a minute).
lib.espeak_SetParameter(RATE, 130, 0)
if lib.espeak_Synth(ctypes.c_char_p(text), ctypes.c_size_t(len(text) + 1), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None) != 0:
    sys.exit("stt-local: eSpeak NG could not speak the sample")
lib.espeak_Synchronize()
samples = array.array("h", b"".join(chunks))
noise = random.Random(23)
samples = array.array("h", (max(-32768, min(32767, s + round(noise.gauss(0, hiss)))) for s in samples))
if sys.byteorder == "big":
    # WAV is little-endian; eSpeak's samples are the machine's.
    samples.byteswap()
with wave.open(out + ".part", "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(rate)
    w.writeframes(samples.tobytes())
PY
  mv "$sample.part" "$sample"
  printf '%s\n' "$SAMPLE_TEXT" > "$dir/sample.txt"
  printf '%s\n' "$recipe" > "$dir/sample.recipe"
fi

voice_note="$dir/sample.ogg"
if [ ! -s "$voice_note" ] || [ "$sample" -nt "$voice_note" ]; then
  echo "stt-local: encoding the sample as a WhatsApp voice note (Ogg Opus, 16 kHz mono)"
  "$dir/bin/python" - "$sample" "$voice_note" <<'PY'
import sys
import av

source, out = sys.argv[1], sys.argv[2]
# WhatsApp's voice notes: Opus at 16 kHz, mono, a low bitrate, in Ogg.
RATE, BITRATE = 16000, 24000
with av.open(source) as wav, av.open(out + ".part", "w", format="ogg") as ogg:
    stream = ogg.add_stream("libopus", rate=RATE, layout="mono")
    stream.bit_rate = BITRATE
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    for frame in wav.decode(audio=0):
        for converted in resampler.resample(frame):
            ogg.mux(stream.encode(converted))
    for converted in resampler.resample(None):
        ogg.mux(stream.encode(converted))
    ogg.mux(stream.encode(None))
PY
  mv "$voice_note.part" "$voice_note"
fi
ls -l "$sample" "$voice_note"
echo "stt-local: ready; start the server with: $dir/bin/python scripts/stt-server.py"
