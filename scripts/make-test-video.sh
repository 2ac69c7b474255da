#!/usr/bin/env bash
# Generates the two short test clips shipped in media/ (run from the repo root).
# Each clip shows a burned-in timecode (seconds.milliseconds and frame number) so
# sync between viewers can be judged by eye, and a sweeping bar for motion.
# Small on purpose: 320x180, 25 fps, a keyframe every 15 frames so seeks land fast,
# faststart so the browser can begin playing before the whole file is read.
set -euo pipefail

out_dir="${1:-media}"
font="${FONT:-/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf}"
mkdir -p "$out_dir"

make_clip() {
  local file="$1" duration="$2" background="$3" label="$4" tone_hz="$5"
  local text_filter
  if [[ -f "$font" ]]; then
    # %{pts:hms} gives HH:MM:SS.mmm; the frame number helps spot single-frame offsets.
    text_filter="drawtext=fontfile=${font}:fontsize=30:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=6:x=(w-tw)/2:y=60:text='%{pts\\:hms}',\
drawtext=fontfile=${font}:fontsize=16:fontcolor=white:x=10:y=10:text='${label}',\
drawtext=fontfile=${font}:fontsize=16:fontcolor=white:x=10:y=h-26:text='frame %{frame_num}'"
  else
    # No font: fall back to testsrc's own counter (overlay-free).
    text_filter="null"
  fi
  local source
  if [[ -f "$font" ]]; then
    source="color=c=${background}:s=320x180:r=25:d=${duration}"
  else
    source="testsrc=s=320x180:r=25:d=${duration}"
  fi
  ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i "$source" \
    -f lavfi -i "sine=frequency=${tone_hz}:sample_rate=22050:duration=${duration}" \
    -filter_complex "[0:v]drawbox=x='mod(t*64,320)':y=130:w=12:h=30:color=yellow@0.9:t=fill,${text_filter},format=yuv420p[v];[1:a]volume=0.05[a]" \
    -map '[v]' -map '[a]' \
    -c:v libx264 -preset veryslow -tune stillimage -crf 40 -g 15 -keyint_min 15 -sc_threshold 0 \
    -profile:v main -pix_fmt yuv420p \
    -c:a aac -b:a 16k -ac 1 \
    -movflags +faststart \
    "$out_dir/$file"
  echo "$out_dir/$file: $(stat -c %s "$out_dir/$file") bytes"
}

make_clip "clip-a-60s.mp4" 60 "0x1d3557" "watch-together test clip A" 440
make_clip "clip-b-30s.mp4" 30 "0x6a040f" "watch-together test clip B" 660
