// Package witness is the client side of a transparency-log witness (C2SP
// tlog-witness v1): the add-checkpoint wire format, a [Client] that asks
// a witness to cosign a checkpoint, and the checks of witnesses'
// cosignatures (C2SP tlog-cosignature, ed25519 cosignature/v1).
//
// The witness server itself, lethe-witness, is services/witness: it is
// run by a customer or a supervisory authority, apart from Lethe. Its
// wire format and its key format are here, in the pkg module, because
// the services modules never import each other: the orchestrator (which
// sends its checkpoints to witnesses and counts their cosignatures), the
// lethectl CLI (which checks a certificate's checkpoint against the
// witnesses its user trusts) and the server all import this package, so
// the two ends of the protocol cannot drift apart.
package witness
