package httpapi

// strictDecode is "Prefer: handling=strict": unknown members are refused.
var strictDecode = decodeOptions{strict: true}
