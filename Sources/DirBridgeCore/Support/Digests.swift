import Crypto
import Foundation

/// SHA-256 and HMAC-SHA256 as lowercase hex, from swift-crypto: plans, mapping files and
/// store fingerprints are hashed with it, webhook bodies signed.
///
/// ```swift
/// Digests.sha256Hex("abc")  // "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/// ```
public enum Digests {
    /// The SHA-256 digest of `bytes` as 64 lowercase hex digits.
    public static func sha256Hex<Bytes: DataProtocol>(_ bytes: Bytes) -> String {
        Hex.encode(Array(SHA256.hash(data: bytes)))
    }

    /// The SHA-256 digest of the UTF-8 bytes of `text`.
    public static func sha256Hex(_ text: String) -> String { sha256Hex(Array(text.utf8)) }

    /// HMAC-SHA256 of `message` under `key`, as 64 lowercase hex digits.
    public static func hmacSHA256Hex<Bytes: DataProtocol>(key: [UInt8], message: Bytes) -> String {
        Hex.encode(Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key))))
    }
}
