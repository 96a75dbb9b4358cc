import Foundation
import HTTPTypes
import Hummingbird

/// The static documents: the dashboard page and the OpenAPI description, read once from the bundle.
enum Resources {
    static let dashboard = load("dashboard", "html", contentType: "text/html; charset=utf-8")
    private static let openAPITemplate = load("openapi", "json", contentType: "application/json")

    /// The OpenAPI document for this server: the `table` parameter lists the served tables, and the key and
    /// cursor parameters carry the keys' pattern when every table's key type has the same one, so a client
    /// (or schemathesis) knows which keys are well-formed.
    static func openAPI(tables: [String], keyPattern: String?) -> Response {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json"),
            let data = try? Data(contentsOf: url),
            var document = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            var paths = document["paths"] as? [String: Any]
        else { return openAPITemplate }
        for (path, item) in paths {
            guard var item = item as? [String: Any], var get = item["get"] as? [String: Any],
                let parameters = get["parameters"] as? [[String: Any]]
            else { continue }
            get["parameters"] = parameters.map { parameter -> [String: Any] in
                var parameter = parameter
                var schema = parameter["schema"] as? [String: Any] ?? [:]
                switch parameter["name"] as? String {
                case "table" where !tables.isEmpty:
                    schema["enum"] = tables
                case "key", "after":
                    if let keyPattern { schema["pattern"] = keyPattern }
                default:
                    break
                }
                parameter["schema"] = schema
                return parameter
            }
            item["get"] = get
            paths[path] = item
        }
        document["paths"] = paths
        guard let body = try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys]) else {
            return openAPITemplate
        }
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }

    private static func load(_ name: String, _ ext: String, contentType: String) -> Response {
        // The resources are part of the module; a missing one is a packaging error, answered as a 500.
        guard let url = Bundle.module.url(forResource: name, withExtension: ext),
            let data = try? Data(contentsOf: url)
        else {
            return Problem(
                status: .internalServerError,
                title: "Missing resource",
                detail: "\(name).\(ext) is not in the DeltaKitHTTP bundle"
            ).response
        }
        var headers = HTTPFields()
        headers[.contentType] = contentType
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
