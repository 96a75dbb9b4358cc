import DeltaKit
import Foundation
import HTTPTypes
import Hummingbird

/// An error answered as `application/problem+json` (RFC 9457), naming the bad parameter when there is one.
struct Problem: Error, Sendable {
    var status: HTTPResponse.Status
    var title: String
    var detail: String
    /// The query parameter, path segment or header that was wrong.
    var parameter: String?

    static func badParameter(_ name: String, _ detail: String) -> Problem {
        Problem(status: .badRequest, title: "Bad parameter", detail: "\(name): \(detail)", parameter: name)
    }

    static func notFound(_ detail: String) -> Problem {
        Problem(status: .notFound, title: "Not found", detail: detail)
    }

    /// The problem for an error a store or a wait threw.
    static func from(_ error: any Error, parameter: String? = nil) -> Problem {
        if let problem = error as? Problem { return problem }
        if let error = error as? DeltaKitError {
            switch error.code {
            case .changesUnavailable:
                return Problem(
                    status: .gone,
                    title: "Changes unavailable",
                    detail: "\(error.message); start again from a snapshot",
                    parameter: parameter
                )
            case .invalidConfiguration where parameter != nil:
                return Problem(
                    status: .badRequest,
                    title: "Bad parameter",
                    detail: "\(parameter ?? ""): \(error.message)",
                    parameter: parameter
                )
            case .timedOut:
                return Problem(status: .serviceUnavailable, title: "Not visible yet", detail: error.message)
            default:
                break
            }
        }
        return Problem(status: .internalServerError, title: "Store failure", detail: "\(error)")
    }

    var json: Data {
        var object: [String: any Encodable] = [
            "type": "about:blank", "title": title, "status": status.code, "detail": detail,
        ]
        if let parameter { object["parameter"] = parameter }
        return (try? JSONBody.encode(object.mapValues(AnyEncodable.init))) ?? Data("{}".utf8)
    }

    var response: Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/problem+json"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: json)))
    }
}

private struct AnyEncodable: Encodable {
    var value: any Encodable
    init(_ value: any Encodable) { self.value = value }
    func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
}

/// Answers what no route handles as problem+json: a method other than GET (every route is read-only) is 405,
/// a path no route matches is 404.
struct ProblemMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext

    func handle(
        _ request: Request,
        context: BasicRequestContext,
        next: (Request, BasicRequestContext) async throws -> Response
    ) async throws -> Response {
        guard request.method == .get || request.method == .head else {
            var response = Problem(
                status: .methodNotAllowed,
                title: "Method not allowed",
                detail: "the API is read-only: use GET"
            ).response
            response.headers[.allow] = "GET"
            return response
        }
        do {
            return try await next(request, context)
        } catch let error as any HTTPResponseError {
            let problem = Problem(
                status: error.status,
                title: error.status.reasonPhrase,
                detail: error.status == .notFound ? "no route for \(request.uri.path)" : "\(error.status)"
            )
            return problem.response
        }
    }
}
