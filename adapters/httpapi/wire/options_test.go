package wire

// strictDecode is "Prefer: handling=strict": unknown members are refused.
var strictDecode = Options{Strict: true}
