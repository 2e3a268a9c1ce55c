" Vim syntax file for rcv recovery policies (*.rcv)
if exists('b:current_syntax')
  finish
endif

syn case match

syn match   rcvComment     "#.*$" contains=@Spell
syn region  rcvString      start=+"+ skip=+\\.+ end=+"\|$+ contains=rcvEscape
syn match   rcvEscape      +\\["\\nt]+ contained
syn match   rcvRegex       +/\%([^/\\]\|\\.\)\+/[imsx]*+
syn match   rcvNumber      "-\?\<\d\+\%(\.\d\+\)\?\>"
syn match   rcvDuration    "\<\d\+\%(\.\d\+\)\?\%(ms\|s\|m\|h\)\>"
syn match   rcvMoney       "\$\d\+\%(\.\d\+\)\?"

syn match   rcvField       "\<\h\w*\%(\.\h\w*\)\+\>"
syn keyword rcvBuiltinField kind model outcome response_started latency cost tokens_in tokens_out risk intent class attempt class_attempts resets fallbacks
syn match   rcvReasonCode  "\<\u[A-Z0-9_]*\>"

syn keyword rcvHeader      policy version
syn match   rcvBlock       "^\s*\zs\%(const\|classes\|reasons\|models\|strategies\|prompts\|budget\|fleet\|classify\|recover\|accept\|invariant\|gate\)\>"
syn keyword rcvAction      retry fallback reset escalate abort
syn keyword rcvControl     when otherwise require else then never always
syn keyword rcvLogical     and or not in has
syn keyword rcvOption      reason strategy backoff jitter prompt queue severity retry_budget breaker min max tier cost_per_1k ratio window failures cooldown attempts
syn keyword rcvBoolean     true false
syn keyword rcvConstant    transient permanent info low medium high critical fixed linear exponential none full equal context scratchpad checkpoint
syn match   rcvOperator    "=>\|==\|!=\|<=\|>=\|[<>~=]"

hi def link rcvComment      Comment
hi def link rcvString       String
hi def link rcvEscape       SpecialChar
hi def link rcvRegex        String
hi def link rcvNumber       Number
hi def link rcvDuration     Number
hi def link rcvMoney        Number
hi def link rcvField        Identifier
hi def link rcvBuiltinField Identifier
hi def link rcvReasonCode   Constant
hi def link rcvHeader       PreProc
hi def link rcvBlock        Structure
hi def link rcvAction       Statement
hi def link rcvControl      Conditional
hi def link rcvLogical      Operator
hi def link rcvOption       Keyword
hi def link rcvBoolean      Boolean
hi def link rcvConstant     Constant
hi def link rcvOperator     Operator

let b:current_syntax = 'rcv'
