" rcv recovery policies
autocmd BufRead,BufNewFile *.rcv setfiletype rcv
