using System.Text.Json.Nodes;
using PostTrain.Checkpoints;
using PostTrain.Generation;
using PostTrain.Models;
using PostTrain.Tokenization;
using static TorchSharp.torch;

namespace PostTrain.Serving;

/// <summary>
/// A model made ready to answer requests, shared by the OpenAI-compatible server and the
/// in-process chat client (<c>PostTrainChatClient</c>): the <see cref="ServingEngine"/> over it, its
/// tokenizer and chat template, and the sampling defaults a request that leaves a value unset
/// gets. Defaults are OpenAI's (temperature 1, top_p 1, no top-k, min-p or repetition penalty)
/// except where the model's generation_config.json sets a value, which wins, as vLLM's
/// <c>--generation-config auto</c> does; the end-of-sequence ids are generation_config.json's.
/// </summary>
public sealed class ServedModel : IDisposable
{
    ChatTemplate? template;
    bool templateRead;
    bool ownsModel = true;

    ServedModel(string name, string directory, CausalLM model, HfTokenizer tokenizer, GenerationConfig generation, ServingEngine engine,
        IReadOnlyDictionary<string, object?> templateVariables)
    {
        Name = name;
        Directory = directory;
        Model = model;
        Tokenizer = tokenizer;
        Generation = generation;
        Engine = engine;
        TemplateVariables = templateVariables;
    }

    /// <summary>The name requests use for the base model (vLLM's --served-model-name; default: the directory's name).</summary>
    public string Name { get; }
    public string Directory { get; }
    public CausalLM Model { get; }
    public HfTokenizer Tokenizer { get; }
    public GenerationConfig Generation { get; }
    public ServingEngine Engine { get; }
    /// <summary>Chat-template variables every conversation gets (a request's chat_template_kwargs add to and override them).</summary>
    public IReadOnlyDictionary<string, object?> TemplateVariables { get; }

    /// <summary>
    /// Loads the model directory (Hugging Face layout with tokenizer.json) in
    /// <paramref name="dtype"/> and starts its engine.
    /// </summary>
    public static ServedModel Load(string directory, ScalarType dtype = ScalarType.Float32, ServingEngineOptions? options = null, string? name = null,
        IReadOnlyDictionary<string, object?>? templateVariables = null)
    {
        if (!File.Exists(Path.Combine(directory, "tokenizer.json")))
            throw new InputError($"{directory}: no tokenizer.json: serving needs the model's tokenizer");
        var tokenizer = HfTokenizer.FromDirectory(directory);
        var config = HfCheckpoint.LoadConfig(directory);
        var generation = GenerationConfig.Load(directory, config);
        var model = HfCheckpoint.Load(directory, dtype);
        try
        {
            model.eval();
            var engine = new ServingEngine(model, ids => tokenizer.Decode(ids, skipSpecialTokens: true), options);
            name ??= Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory)));
            var served = new ServedModel(name, directory, model, tokenizer, generation, engine, templateVariables ?? new Dictionary<string, object?>());
            try
            {
                _ = served.HasChatTemplate; // a broken template fails the start, not the first chat request
            }
            catch
            {
                engine.Dispose();
                throw;
            }
            return served;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Serves a model already in memory (e.g. one just trained), with its tokenizer; the chat
    /// template and generation_config.json come from <paramref name="directory"/> when it has
    /// them. The model is used, not owned: disposing the result stops the engine only.
    /// </summary>
    public static ServedModel FromModel(string name, CausalLM model, HfTokenizer tokenizer, string directory, ServingEngineOptions? options = null,
        IReadOnlyDictionary<string, object?>? templateVariables = null)
    {
        model.eval();
        var generation = System.IO.Directory.Exists(directory) ? GenerationConfig.Load(directory, model.Config) : new GenerationConfig { EosTokenIds = model.Config.EosTokenIds };
        var engine = new ServingEngine(model, ids => tokenizer.Decode(ids, skipSpecialTokens: true), options);
        return new ServedModel(name, directory, model, tokenizer, generation, engine, templateVariables ?? new Dictionary<string, object?>()) { ownsModel = false };
    }

    /// <summary>The sampling options of a request before its own values: the defaults described above.</summary>
    public SamplingOptions DefaultSampling()
    {
        var g = Generation;
        bool Has(string key) => g.Keys.Contains(key);
        return new SamplingOptions
        {
            Temperature = Has("temperature") ? g.Temperature : 1.0,
            TopP = Has("top_p") ? g.TopP : 1.0,
            TopK = Has("top_k") ? g.TopK : 0,
            MinP = Has("min_p") ? g.MinP : 0,
            RepetitionPenalty = Has("repetition_penalty") ? g.RepetitionPenalty : 1.0,
            EosTokenIds = g.EosTokenIds,
        };
    }

    /// <summary>A text prompt's tokens, special tokens added (Llama 3's BOS), as vLLM's completions endpoint and transformers' tokenizer(text) do.</summary>
    public int[] EncodePrompt(string text) => Tokenizer.Encode(text, addSpecialTokens: true);

    /// <summary>A completion's text: special tokens skipped.</summary>
    public string Decode(IReadOnlyList<int> ids) => Tokenizer.Decode(ids, skipSpecialTokens: true);

    /// <summary>One token as text (special tokens included), for log-probability listings.</summary>
    public string TokenText(int id) => Tokenizer.Decode([id]);

    /// <summary>Whether the model has a chat template.</summary>
    public bool HasChatTemplate => Template is not null;

    ChatTemplate? Template
    {
        get
        {
            if (!templateRead)
            {
                // A model without a template serves completions only; a broken template is an error.
                bool has = System.IO.Directory.Exists(Directory) && File.Exists(Path.Combine(Directory, "chat_template.jinja")) ||
                           (File.Exists(Path.Combine(Directory, "tokenizer_config.json")) &&
                            JsonNode.Parse(File.ReadAllText(Path.Combine(Directory, "tokenizer_config.json")))?["chat_template"] is not null);
                template = has ? ChatTemplate.FromModelDirectory(Directory) : null;
                templateRead = true;
            }
            return template;
        }
    }

    /// <summary>
    /// A conversation rendered with the chat template (tools and variables passed to it) and
    /// tokenized without added special tokens (the template writes them).
    /// </summary>
    /// <param name="where">Names the input in errors (e.g. "messages").</param>
    public int[] EncodeChat(JsonArray messages, JsonArray? tools, IReadOnlyDictionary<string, object?>? variables, bool addGenerationPrompt, string where = "messages")
    {
        var t = Template ?? throw ChatPrompt.Missing(where);
        var all = new Dictionary<string, object?>(TemplateVariables);
        if (variables is not null)
            foreach (var (k, v) in variables) all[k] = v;
        return Tokenizer.Encode(ChatPrompt.Render(t, messages, tools, all, addGenerationPrompt, where));
    }

    public void Dispose()
    {
        Engine.Dispose();
        if (ownsModel) Model.Dispose();
    }
}
