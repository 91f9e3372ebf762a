package httpapi

import "github.com/mailgate/mailgate/adapters/httpapi/wire"

// strictDecode is "Prefer: handling=strict": unknown members are refused.
var strictDecode = wire.Options{Strict: true}
