#!/usr/bin/env bash
# Renders a nightshift HTML report in headless Chromium and checks the picture
# is not blank (enough non-white pixels, several colours: the plots' lines).
#   scripts/check_report.sh NIGHTSHIFT [REPORT.html]
# Without REPORT.html, makes one: a short replayed run of the recorded H100
# measurements, then `nightshift report`. Writes the screenshot beside the
# report (report.png; $OUT/report.png when OUT is set, for CI artifacts).
# Exits 77 (CTest's "skipped") when Chromium is not installed.
set -euo pipefail
nightshift=$(realpath "$1")
root=$(cd "$(dirname "$0")/.." && pwd)

browser=""
for candidate in chromium chromium-browser google-chrome; do
    if command -v "$candidate" >/dev/null 2>&1; then browser=$candidate; break; fi
done
if [ -z "$browser" ]; then
    echo "SKIP: no chromium here (apt-get install chromium to run this check)"
    exit 77
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ $# -ge 2 ]; then
    report=$(realpath "$2")
else
    (cd "$root" && "$nightshift" run plans/warp-decode-gemma4.md --loops 2 --experiments 24 --no-progress \
        --db "$work/results.db" \
        --evaluator replay:experiments/2026-11-26_h100_gemma4-measurements.jsonl >"$work/run.log" 2>&1) ||
        { cat "$work/run.log"; exit 1; }
    report="$work/report.html"
    "$nightshift" report --db "$work/results.db" --out "$report"
fi
png="${OUT:-$(dirname "$report")}/report.png"
mkdir -p "$(dirname "$png")"

# A private profile and no sandbox (containers run as root); no network is used.
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
    --user-data-dir="$work/profile" --window-size=1200,2400 --screenshot="$png" "file://$report" \
    >"$work/browser.log" 2>&1 || { cat "$work/browser.log"; exit 1; }
[ -s "$png" ] || { echo "FAIL: no screenshot written"; cat "$work/browser.log"; exit 1; }

python3 - "$png" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, width = 8, b"", 0
while pos < len(data):
    length, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + length]
    if kind == b"IHDR":
        width, height, depth, colour = struct.unpack(">IIBB", body[:10])
        assert depth == 8 and colour in (2, 6), f"unexpected PNG format depth={depth} colour={colour}"
        channels = 3 if colour == 2 else 4
    elif kind == b"IDAT":
        idat += body
    pos += 12 + length
raw = zlib.decompress(idat)
stride = width * channels
previous = bytearray(stride)
non_white, colours, row_start = 0, set(), 0
for y in range(height):
    kind, line = raw[row_start], bytearray(raw[row_start + 1:row_start + 1 + stride])
    row_start += 1 + stride
    for i in range(stride):  # PNG row filters
        a = line[i - channels] if i >= channels else 0
        b, c = previous[i], previous[i - channels] if i >= channels else 0
        if kind == 1: line[i] = (line[i] + a) & 255
        elif kind == 2: line[i] = (line[i] + b) & 255
        elif kind == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif kind == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    previous = line
    for x in range(0, stride, channels * 4):  # every 4th pixel is plenty
        pixel = bytes(line[x:x + 3])
        if pixel != b"\xff\xff\xff": non_white += 1
        colours.add(pixel)
sampled = height * ((width + 3) // 4)
share = non_white / sampled
print(f"{sys.argv[1]}: {width}x{height}, {share:.1%} non-white, {len(colours)} colours")
assert share > 0.02, "the page is blank"
assert len(colours) > 20, "too few colours: no plots drawn"
PY
echo "report renders: $png"
