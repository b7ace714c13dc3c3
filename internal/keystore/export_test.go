package keystore

// KeyBlock is keyBlock, so the fuzz target judges the KDF cost of the
// block Parse decrypts, not of the first one.
var KeyBlock = keyBlock
