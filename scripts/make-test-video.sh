#!/usr/bin/env bash
# Generates the test media shipped in media/ (run from the repo root): two short clips,
# an HLS version of a third (a folder with a playlist and ~1 s segments) and WebVTT
# subtitles for clip A.
# Each clip shows a burned-in timecode (seconds.milliseconds and frame number) so
# sync between viewers can be judged by eye, and a sweeping bar for motion.
# Small on purpose: 320x180, 25 fps, a keyframe every 15 frames so seeks land fast,
# faststart so the browser can begin playing before the whole file is read.
set -euo pipefail

out_dir="${1:-media}"
font="${FONT:-/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf}"
mkdir -p "$out_dir"

# make_clip FILE DURATION BACKGROUND LABEL TONE_HZ [hls]: an MP4 file, or with "hls" an HLS
# folder FILE/ holding index.m3u8 and 1 s MPEG-TS segments (a keyframe every second, so
# each segment starts with one).
make_clip() {
  local file="$1" duration="$2" background="$3" label="$4" tone_hz="$5" format="${6:-mp4}"
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
  local output
  if [[ "$format" == hls ]]; then
    rm -rf "${out_dir:?}/$file"
    mkdir -p "$out_dir/$file"
    output=(-g 25 -keyint_min 25 -f hls -hls_time 1 -hls_playlist_type vod
      -hls_segment_filename "$out_dir/$file/seg%03d.ts" "$out_dir/$file/index.m3u8")
  else
    output=(-g 15 -keyint_min 15 -movflags +faststart "$out_dir/$file")
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
    -c:v libx264 -preset veryslow -tune stillimage -crf 40 -sc_threshold 0 \
    -profile:v main -pix_fmt yuv420p \
    -c:a aac -b:a 16k -ac 1 \
    "${output[@]}"
  echo "$out_dir/$file: $(du -sb "$out_dir/$file" | cut -f1) bytes"
}

make_clip "clip-a-60s.mp4" 60 "0x1d3557" "watch-together test clip A" 440
make_clip "clip-b-30s.mp4" 30 "0x6a040f" "watch-together test clip B" 660
make_clip "clip-c-hls" 20 "0x2a6f2b" "watch-together HLS clip C" 550 hls

# Subtitles for clip A: English and German, one cue every 4 s lasting 2 s, each saying when
# it should show, so a test (or a person) can tell a cue shown at the wrong time.
make_subtitles() {
  local file="$1" word="$2"
  {
    echo "WEBVTT"
    echo
    for ((s = 2; s < 60; s += 4)); do
      printf '%s\n00:00:%02d.000 --> 00:00:%02d.000\n%s %d s\n\n' "cue-$s" "$s" "$((s + 2))" "$word" "$s"
    done
  } >"$out_dir/$file"
  echo "$out_dir/$file: $(stat -c %s "$out_dir/$file") bytes"
}
make_subtitles "clip-a-60s.en.vtt" "Subtitle at"
make_subtitles "clip-a-60s.de.vtt" "Untertitel bei"
