" rcv recovery policies: comments, indentation, formatting with `rcv fmt`.
if exists('b:did_ftplugin')
  finish
endif
let b:did_ftplugin = 1

setlocal commentstring=#\ %s
setlocal comments=:#
setlocal expandtab shiftwidth=2 softtabstop=2
setlocal iskeyword=@,48-57,_
" `gq` over a whole file, or :RcvFmt, rewrites it in the canonical layout.
setlocal formatprg=rcv\ fmt\ -
command! -buffer RcvFmt %!rcv fmt -
" :make runs the checker; errors land in the quickfix list.
setlocal makeprg=rcv\ check\ --color\ never\ %
setlocal errorformat=%E[RCV%n]\ Error:\ %m,%W[RCV%n]\ Warning:\ %m,%Z%\\s%#\\,-[\ %f:%l:%c\ ],%-G%.%#

let b:undo_ftplugin = 'setlocal commentstring< comments< expandtab< shiftwidth< softtabstop< iskeyword< formatprg< makeprg< errorformat<'
      \ . ' | delcommand RcvFmt'
