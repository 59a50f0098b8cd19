package identity

// DecodeHolderIDs exposes the holder-record decoding to the package's external tests.
var DecodeHolderIDs = decodeIDs

// EncodeHolderIDs exposes the holder-record encoding to the package's external tests.
var EncodeHolderIDs = encodeIDs
