using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace PostTrain.Remote;

/// <summary>
/// The one HTTP client of an OpenAI-compatible server (vLLM, `posttrain serve`) that remote
/// rollouts and `posttrain eval --endpoint` share: JSON in and out, <c>Authorization: Bearer KEY</c>
/// when a key is given, a timeout per request, and retries with exponential backoff (1 s, 2 s, 4 s by
/// default) on connection failures, 429 and 5xx answers. Anything else that goes wrong is an
/// <see cref="InputError"/> naming the URL: <c>http://host:8000/v1/completions: connection refused (4 tries)</c>,
/// the server's own message (<c>{"error":{"message":…}}</c>) with its status, an answer that is not JSON.
/// <code>
/// using var client = new OpenAiClient("http://127.0.0.1:8000", apiKey: null, timeoutSeconds: 600);
/// var answer = client.Post("/v1/completions", new JsonObject { ["model"] = client.FirstModel(), ["prompt"] = "2+2=" });
/// </code>
/// </summary>
public sealed class OpenAiClient : IDisposable
{
    /// <summary>The waits before the 2nd, 3rd and 4th tries.</summary>
    public static readonly IReadOnlyList<TimeSpan> DefaultRetryDelays = [TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(4)];

    readonly HttpClient http;
    readonly IReadOnlyList<TimeSpan> retryDelays;
    readonly double timeoutSeconds;
    readonly string timeoutOption;

    /// <param name="baseUrl">The server (http://host:port); a trailing /v1 (OpenAI's base_url) is accepted.</param>
    /// <param name="apiKey">Sent as a bearer token; null: no Authorization header.</param>
    /// <param name="timeoutSeconds">Most seconds one request may take.</param>
    /// <param name="retryDelays">Waits between tries (null: <see cref="DefaultRetryDelays"/>; empty: one try).</param>
    /// <param name="timeoutOption">The option that sets the timeout, named when a request times out.</param>
    public OpenAiClient(string baseUrl, string? apiKey, double timeoutSeconds, IReadOnlyList<TimeSpan>? retryDelays = null, string timeoutOption = "timeout")
    {
        BaseUrl = Normalize(baseUrl);
        this.retryDelays = retryDelays ?? DefaultRetryDelays;
        this.timeoutSeconds = timeoutSeconds;
        this.timeoutOption = timeoutOption;
        http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        if (!string.IsNullOrEmpty(apiKey)) http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
    }

    /// <summary>The server's URL without a trailing slash or /v1.</summary>
    public string BaseUrl { get; }

    /// <summary>The URL <paramref name="baseUrl"/> names, checked: http or https, no trailing / or /v1.</summary>
    public static string Normalize(string baseUrl, string option = "url")
    {
        var url = baseUrl.Trim().TrimEnd('/');
        if (url.EndsWith("/v1", StringComparison.Ordinal)) url = url[..^3];
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw new InputError($"{option}: '{baseUrl}' is not an http:// or https:// URL");
        return url;
    }

    /// <summary>POSTs <paramref name="body"/> as JSON to BaseUrl + <paramref name="path"/> and returns the JSON object answered.</summary>
    public JsonObject Post(string path, JsonObject body) => Json(path, Send(HttpMethod.Post, path, body.ToJsonString()));

    /// <summary>
    /// POSTs <paramref name="body"/> and returns the answer's text, whatever it is: vLLM's
    /// /v1/load_lora_adapter and /v1/unload_lora_adapter answer plain text ("Success: ...").
    /// </summary>
    public string PostForText(string path, JsonObject body) => Send(HttpMethod.Post, path, body.ToJsonString());

    /// <summary>GETs BaseUrl + <paramref name="path"/> and returns the JSON object answered.</summary>
    public JsonObject Get(string path) => Json(path, Send(HttpMethod.Get, path, null));

    JsonObject Json(string path, string text)
    {
        try
        {
            if (JsonNode.Parse(text) is JsonObject o) return o;
        }
        catch (JsonException) { }
        throw new InputError($"{BaseUrl + path}: the answer is not a JSON object: {Excerpt(text)}");
    }

    /// <summary>The first model id of GET /v1/models (vLLM's served model name; OpenAI's list order).</summary>
    public string FirstModel() => Models()[0];

    /// <summary>The model ids of GET /v1/models, in order (at least one).</summary>
    public IReadOnlyList<string> Models()
    {
        var answer = Get("/v1/models");
        var ids = (answer["data"] as JsonArray ?? []).Select(m => m?["id"] is JsonValue id && id.TryGetValue<string>(out var name) ? name : null)
            .OfType<string>().ToList();
        if (ids.Count == 0) throw new InputError($"{BaseUrl}/v1/models: no model listed (expected {{\"data\": [{{\"id\": ...}}]}})");
        return ids;
    }

    // The text of a successful answer; failures retried as described, then one-line errors.
    string Send(HttpMethod method, string path, string? json)
    {
        var url = BaseUrl + path;
        string last;
        for (int attempt = 0; ; attempt++)
        {
            if (attempt > 0) Thread.Sleep(retryDelays[attempt - 1]);
            bool more = attempt < retryDelays.Count;
            string tries = attempt == 0 ? "" : $" ({attempt + 1} tries)";
            using var request = new HttpRequestMessage(method, url);
            if (json is not null) request.Content = new StringContent(json, Encoding.UTF8, "application/json");
            using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(timeoutSeconds));
            HttpResponseMessage? response = null;
            string text;
            try
            {
                response = http.Send(request, HttpCompletionOption.ResponseContentRead, cancel.Token);
                using var reader = new StreamReader(response.Content.ReadAsStream(cancel.Token), Encoding.UTF8);
                text = reader.ReadToEnd();
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                response?.Dispose();
                throw new InputError($"{url}: no answer within {timeoutSeconds:0.###} s (--{timeoutOption})");
            }
            catch (HttpRequestException e)
            {
                response?.Dispose();
                last = Describe(e);
                if (more) continue;
                throw new InputError($"{url}: {last}{tries}", e);
            }
            using (response)
            {
                int status = (int)response.StatusCode;
                if (response.IsSuccessStatusCode) return text;
                last = $"HTTP {status} {response.ReasonPhrase}: {ServerMessage(text)}";
                if (more && (status == 429 || status >= 500)) continue;
                throw new InputError($"{url}: {last}{tries}");
            }
        }
    }

    /// <summary>The server's OpenAI error message (<c>{"error":{"message":…}}</c>, or FastAPI's <c>{"detail":…}</c>), else the start of the body.</summary>
    static string ServerMessage(string body)
    {
        try
        {
            var node = JsonNode.Parse(body);
            if (node?["error"] is JsonObject error && error["message"] is JsonValue m && m.TryGetValue<string>(out var message)) return OneLine(message);
            if (node?["error"] is JsonValue e && e.TryGetValue<string>(out var plain)) return OneLine(plain);
            if (node?["detail"] is { } detail) return OneLine(detail.ToJsonString());
        }
        catch (JsonException) { }
        return Excerpt(body);
    }

    static string Describe(HttpRequestException e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
            if (x is SocketException s)
                return s.SocketErrorCode switch
                {
                    SocketError.ConnectionRefused => "connection refused (is the server running?)",
                    SocketError.HostNotFound or SocketError.NoData => "unknown host",
                    SocketError.TimedOut => "connection timed out",
                    SocketError.ConnectionReset => "connection reset by the server",
                    _ => OneLine(s.Message),
                };
        return e.HttpRequestError switch
        {
            HttpRequestError.ResponseEnded => "the server closed the connection without an answer",
            HttpRequestError.InvalidResponse => "the answer is not HTTP",
            _ => OneLine(e.InnerException?.Message ?? e.Message),
        };
    }

    static string Excerpt(string text)
    {
        var one = OneLine(text);
        return one.Length == 0 ? "(empty)" : one.Length <= 120 ? one : one[..117] + "...";
    }

    static string OneLine(string text) => string.Join(' ', text.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    public void Dispose() => http.Dispose();
}
