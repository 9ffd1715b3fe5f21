import Foundation
import Logging

/// `--log-format json`: one JSON object per line on standard error, for log shippers:
/// `{"time", "level", "client", "run", "message", "metadata"}` (`client` and `run` lifted out
/// of the metadata when present, otherwise null).
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String

    public init(label: String) { self.label = label }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        var merged = metadata
        if let explicit { merged.merge(explicit) { $1 } }
        let client = merged.removeValue(forKey: "client").map { "\($0)" }
        let run = merged.removeValue(forKey: "run").map { "\($0)" }
        let record = Record(time: StoreTime.text(Date()), level: level.rawValue, client: client, run: run, message: message.description,
                            metadata: merged.mapValues { "\($0)" })
        guard var data = try? Self.encoder.encode(record) else { return }
        data.append(0x0A)
        FileHandle.standardError.write(data)
    }

    private struct Record: Encodable {
        var time: String
        var level: String
        var client: String?
        var run: String?
        var message: String
        var metadata: [String: String]

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(time, forKey: .time)
            try container.encode(level, forKey: .level)
            try container.encode(client, forKey: .client)
            try container.encode(run, forKey: .run)
            try container.encode(message, forKey: .message)
            try container.encode(metadata, forKey: .metadata)
        }

        enum CodingKeys: String, CodingKey { case time, level, client, run, message, metadata }
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}
