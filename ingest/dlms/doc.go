// Package dlms decrypts the DLMS general-glo-ciphering frames that encrypted
// meters (Luxembourg Smarty, Austrian Sagemcom T210-D and others) send on
// their P1 port instead of plain telegrams. It sits between a source and the
// framing: Decoder turns a byte stream holding encrypted frames, plain
// telegrams and noise into the plain telegram stream that parser.Splitter
// expects, so nothing after it knows a meter encrypts (Wrap does this for
// any source.Source, NewReader for any io.Reader).
//
// The decoder is pure: bytes in, bytes and errors out, no I/O, no clock.
//
// # Frame
//
//	DB                      tag: general-glo-ciphering
//	08 <8 bytes>            system title (manufacturer and serial number)
//	LL | 81 LL | 82 HH LL   length of everything that follows
//	SC                      security byte: 0x30 (encrypted and authenticated,
//	                        12-byte GCM tag at the end) or 0x20 / 0x21
//	                        (encrypted only, no tag); 0x31 is 0x30 with
//	                        security suite 1, whose symmetric part is the same
//	FC FC FC FC             frame counter
//	<ciphertext> [<tag>]
//
// AES-128-GCM with IV = system title ‖ frame counter and AAD = security byte
// ‖ authentication key. Frames without a tag are AES-CTR decrypted the way
// GCM encrypts (first counter block IV ‖ 00000002).
//
// # Authentication
//
// A frame with a tag is checked against the gateway's authentication key
// when one is configured, and then nothing else is accepted. When none is
// configured, the tag is checked against the authentication key that the
// Luxembourg Smarty P1 specification publishes for all Smarty meters
// (00112233445566778899AABBCCDDEEFF, see SmartyAuthKey); if it does not
// match, the frame is decrypted without checking the tag and accepted only
// if it is a telegram with a valid CRC. Once a frame's tag has matched the
// Smarty key, the meter is known to sign with it, and the Decoder demands
// that of every later frame: a CRC is no protection against someone who
// flips ciphertext bits on purpose (CTR mode lets them, CRC-16 is linear). That is the Austrian case: some grid
// operators (Energienetze Steiermark for the Sagemcom T210-D) give the
// customer the encryption key only, so the tag cannot be checked and the
// telegram's CRC-16 is the only integrity check there is — as good as for an
// unencrypted meter, no better. Frames without a tag (0x20, 0x21) get the same
// CRC rule. Configure the authentication key where the operator gives one.
//
// # Not supported
//
// Some Austrian meters (Kaifa MA309 in Tirol, Salzburg and Vorarlberg, EVN's
// meters, Iskra AM550 and IM350 in Vienna) wrap binary DLMS/COSEM instead of
// a P1 telegram, in M-Bus (68 L L 68) or HDLC (7E A…) frames. The decoder
// recognises those and reports ErrUnsupported instead of passing on bytes no
// parser could read.
package dlms
