using System.Text.Json;
using System.Text.Json.Nodes;
using PostTrain.Tokenization.Jinja;

namespace PostTrain.Tokenization;

/// <summary>A character span [Start, End) in a rendered chat (UTF-16 indices into the .NET string).</summary>
public readonly record struct CharSpan(int Start, int End)
{
    public int Length => End - Start;
}

/// <summary>What a chat template is rendered with.</summary>
public sealed class ChatTemplateInput
{
    public required JsonArray Messages { get; init; }
    /// <summary>Tool schemas; the template sees None when null.</summary>
    public JsonArray? Tools { get; init; }
    /// <summary>Documents for retrieval-augmented templates; None when null.</summary>
    public JsonArray? Documents { get; init; }
    public bool AddGenerationPrompt { get; init; }
    /// <summary>Extra template variables (e.g. enable_thinking); values are JsonNode or plain .NET values. They override special tokens.</summary>
    public IReadOnlyDictionary<string, object?>? Variables { get; init; }
}

/// <summary>A rendered chat: the text, and the spans of any {% generation %} blocks.</summary>
public sealed record RenderResult(string Text, IReadOnlyList<CharSpan> GenerationSpans);

/// <summary>
/// A Hugging Face chat template, rendered as transformers' apply_chat_template renders it
/// (jinja2 ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks, loop controls, the
/// {% generation %} tag, tojson, raise_exception and strftime_now).
/// </summary>
public sealed class ChatTemplate
{
    private readonly List<Node> _body;

    public string Source { get; }
    public string SourceName { get; }
    /// <summary>bos_token, eos_token, pad_token, unk_token, ... as the template sees them.</summary>
    public IReadOnlyDictionary<string, string> SpecialTokens { get; }
    /// <summary>True when the template marks assistant output with {% generation %} blocks.</summary>
    public bool HasGenerationBlocks { get; }
    /// <summary>The clock strftime_now reads (local time, as datetime.now()); set a fixed one for reproducible renders.</summary>
    public Func<DateTime> Now { get; set; } = () => DateTime.Now;

    private ChatTemplate(string source, string sourceName, List<Node> body, IReadOnlyDictionary<string, string> specialTokens)
    {
        Source = source;
        SourceName = sourceName;
        _body = body;
        SpecialTokens = specialTokens;
        HasGenerationBlocks = ContainsGeneration(body);
    }

    /// <summary>Parses template source; a syntax error is a <see cref="TemplateSyntaxError"/> naming sourceName, line and column.</summary>
    public static ChatTemplate Parse(string source, string sourceName, IReadOnlyDictionary<string, string>? specialTokens = null) =>
        new(source, sourceName, Parser.Parse(source, sourceName), specialTokens ?? new Dictionary<string, string>());

    private static readonly string[] SpecialTokenNames = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"];

    /// <summary>
    /// Loads a model directory's chat template: chat_template.jinja when present (or
    /// additional_chat_templates/NAME.jinja for a named one), else tokenizer_config.json's
    /// "chat_template", a string or a list of {"name", "template"} ("default" unless
    /// <paramref name="name"/> is given). Special tokens come from tokenizer_config.json, as
    /// strings or {"content": ...} objects.
    /// </summary>
    public static ChatTemplate FromModelDirectory(string dir, string? name = null)
    {
        if (!Directory.Exists(dir)) throw new InputError($"{dir}: model directory not found");
        var configPath = Path.Combine(dir, "tokenizer_config.json");
        JsonObject? config = null;
        if (File.Exists(configPath))
        {
            try
            {
                config = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject
                    ?? throw new InputError($"{configPath}: expected a JSON object");
            }
            catch (JsonException e)
            {
                throw new InputError($"{configPath}: malformed JSON: {e.Message}");
            }
        }
        var tokens = new Dictionary<string, string>();
        if (config is not null)
        {
            foreach (var key in SpecialTokenNames)
            {
                switch (config[key])
                {
                    case JsonValue v when v.GetValueKind() == JsonValueKind.String: tokens[key] = v.GetValue<string>(); break;
                    case JsonObject o when o["content"] is JsonValue c && c.GetValueKind() == JsonValueKind.String: tokens[key] = c.GetValue<string>(); break;
                    case null: break;
                    case JsonValue n when n.GetValueKind() == JsonValueKind.Null: break;
                    default: throw new InputError($"{configPath}: {key}: expected a string or an object with \"content\"");
                }
            }
        }

        string? source = null, sourceName = null;
        var jinjaPath = Path.Combine(dir, "chat_template.jinja");
        var namedPath = name is null ? null : Path.Combine(dir, "additional_chat_templates", name + ".jinja");
        if (namedPath is not null && File.Exists(namedPath)) (source, sourceName) = (File.ReadAllText(namedPath), namedPath);
        else if ((name is null or "default") && File.Exists(jinjaPath)) (source, sourceName) = (File.ReadAllText(jinjaPath), jinjaPath);
        else if (config?["chat_template"] is { } ct)
        {
            sourceName = configPath;
            if (ct is JsonValue sv && sv.GetValueKind() == JsonValueKind.String)
            {
                if (name is not null and not "default") throw new InputError($"{configPath}: chat_template: no template named '{name}'");
                source = sv.GetValue<string>();
            }
            else if (ct is JsonArray list)
            {
                var wanted = name ?? "default";
                var names = new List<string>();
                foreach (var item in list)
                {
                    if (item is not JsonObject o || o["name"] is not JsonValue n || n.GetValueKind() != JsonValueKind.String
                        || o["template"] is not JsonValue t || t.GetValueKind() != JsonValueKind.String)
                        throw new InputError($"{configPath}: chat_template: expected a list of {{\"name\", \"template\"}} objects");
                    names.Add(n.GetValue<string>());
                    if (n.GetValue<string>() == wanted) source = t.GetValue<string>();
                }
                if (source is null) throw new InputError($"{configPath}: chat_template: no template named '{wanted}' (have: {string.Join(", ", names)})");
            }
            else throw new InputError($"{configPath}: chat_template: expected a string or a list of {{\"name\", \"template\"}} objects");
        }
        if (source is null || sourceName is null)
            throw new InputError($"{dir}: no chat template (no chat_template.jinja, and tokenizer_config.json has no chat_template)");
        try
        {
            return Parse(source, sourceName, tokens);
        }
        catch (TemplateSyntaxError e)
        {
            throw new InputError(e.Message, e);
        }
    }

    /// <summary>Renders as apply_chat_template(messages, tools=, documents=, add_generation_prompt=, **variables, tokenize=False).</summary>
    public RenderResult Render(ChatTemplateInput input) => RenderTracked(input).Result;

    /// <summary>Renders and reports, per message index, the output span of the template's loop iteration over that message.</summary>
    internal (RenderResult Result, Dictionary<int, (int Start, int End)> MessageSpans) RenderTracked(ChatTemplateInput input)
    {
        var context = new Dictionary<string, object?>();
        foreach (var (k, v) in SpecialTokens) context[k] = v;
        var messages = (List<object?>)ValueConverter.FromNode(input.Messages)!;
        context["messages"] = messages;
        context["tools"] = input.Tools is null ? null : ValueConverter.FromNode(input.Tools);
        context["documents"] = input.Documents is null ? null : ValueConverter.FromNode(input.Documents);
        context["add_generation_prompt"] = input.AddGenerationPrompt;
        if (input.Variables is not null)
            foreach (var (k, v) in input.Variables) context[k] = ValueConverter.From(v);
        var interp = new Interpreter(SourceName, Now) { TrackedItems = messages.Select(m => m ?? new object()).ToList() };
        var text = interp.Render(_body, context);
        return (new RenderResult(text, interp.GenerationSpans.Select(s => new CharSpan(s.Start, s.End)).ToList()), interp.TrackedSpans);
    }

    /// <summary>Renders with an arbitrary context (values are JsonNode or plain .NET values); special tokens are added unless given.</summary>
    public RenderResult Render(IReadOnlyDictionary<string, object?> context)
    {
        var values = new Dictionary<string, object?>();
        foreach (var (k, v) in SpecialTokens) values[k] = v;
        foreach (var (k, v) in context) values[k] = ValueConverter.From(v);
        var interp = new Interpreter(SourceName, Now);
        var text = interp.Render(_body, values);
        return new RenderResult(text, interp.GenerationSpans.Select(s => new CharSpan(s.Start, s.End)).ToList());
    }

    /// <summary>The character spans of the assistant turns in the full render (see <see cref="Tokenization.AssistantSpans"/>).</summary>
    public IReadOnlyList<CharSpan> AssistantSpans(JsonArray messages, JsonArray? tools = null, JsonArray? documents = null,
        IReadOnlyDictionary<string, object?>? variables = null) =>
        Tokenization.AssistantSpans.Find(this, messages, tools, documents, variables);

    private static bool ContainsGeneration(IEnumerable<Node> nodes)
    {
        foreach (var n in nodes)
        {
            switch (n)
            {
                case GenerationStmt: return true;
                case IfStmt i when i.Branches.Any(b => ContainsGeneration(b.Body)) || (i.Else is not null && ContainsGeneration(i.Else)): return true;
                case ForStmt f when ContainsGeneration(f.Body) || (f.Else is not null && ContainsGeneration(f.Else)): return true;
                case MacroStmt m when ContainsGeneration(m.Body): return true;
                case CallBlockStmt c when ContainsGeneration(c.Body): return true;
                case FilterBlockStmt fb when ContainsGeneration(fb.Body): return true;
                case SetBlockStmt sb when ContainsGeneration(sb.Body): return true;
                case WithStmt w when ContainsGeneration(w.Body): return true;
            }
        }
        return false;
    }
}
