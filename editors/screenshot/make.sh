#!/usr/bin/env bash
# Renders editors/screenshot/rcv.png: demo.rcv highlighted by the Vim syntax
# file (via :TOhtml) with the diagnostic `rcv check` reports for it.
# Needs vim, python3, chromium and a built `rcv` on PATH.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp demo.rcv "$work/"
(cd "$work" && rcv check --color never demo.rcv > diag.txt 2>&1 || true)
cat > "$work/mk.vim" <<VIM
set rtp^=$(cd .. && pwd)/vim
runtime plugin/tohtml.vim
filetype plugin on
syntax on
set t_Co=256 termguicolors background=dark
colorscheme habamax
let g:html_no_progress=1
let g:html_number_lines=1
let g:html_use_css=1
e $work/demo.rcv
TOhtml
w! $work/demo.html
qa!
VIM
vim -Nu NONE -es -S "$work/mk.vim" > /dev/null || true
python3 - "$work" <<'PY'
import html, re, sys
work = sys.argv[1]
h = open(f"{work}/demo.html").read()
h = re.sub(r'<span class="Constant">RETRY_TRANSIET</span>',
           '<span class="Constant" style="text-decoration: underline wavy #ff5555; text-underline-offset: 2px">RETRY_TRANSIET</span>',
           h, count=1)
diag = html.escape(open(f"{work}/diag.txt").read().rsplit("checked", 1)[0].rstrip())
box = ('<pre style="margin:10px 0 0 0; padding:10px 14px; background:#2a1d1d; color:#f0c8c8; '
       f'border-left:4px solid #ff5555; font-size:13px; white-space:pre">{diag}</pre>')
h = h.replace("</head>", "<style>pre { line-height: 1.5 }</style></head>")
open(f"{work}/page.html", "w").write(h.replace("</body>", box + "</body>"))
PY
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1180,900 \
  --screenshot="$PWD/rcv.png" "file://$work/page.html" > /dev/null 2>&1
echo "wrote $PWD/rcv.png"
