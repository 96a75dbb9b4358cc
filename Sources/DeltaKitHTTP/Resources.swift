import Foundation
import HTTPTypes
import Hummingbird

/// The static documents: the dashboard page and the OpenAPI description, read once from the bundle.
enum Resources {
    static let dashboard = load("dashboard", "html", contentType: "text/html; charset=utf-8")
    static let openAPI = load("openapi", "json", contentType: "application/json")

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
