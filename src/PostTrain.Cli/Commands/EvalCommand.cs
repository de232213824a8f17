using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using PostTrain.Checkpoints;
using PostTrain.Evaluation;
using PostTrain.Tokenization;

namespace PostTrain.Cli.Commands;

/// <summary>
/// `posttrain eval`: lm-evaluation-harness tasks (built-in or task YAML) on a model, or on
/// responses generated elsewhere; results.json and samples_TASK.jsonl as lm-eval writes them.
/// </summary>
public static class EvalCommand
{
    public static Command Create()
    {
        var model = new ModelArgs("Model directory (Hugging Face layout with its tokenizer); optional with --responses; with --endpoint only its tokenizer and chat template are read");
        model.Model.Required = false;
        var tasks = new Option<string>("--tasks") { Description = $"Comma-separated built-in task names ({string.Join(", ", TaskYaml.BuiltInNames)}) or lm-eval task YAML files", Required = true };
        var data = new Option<string[]>("--data") { Description = "The task's data (overrides dataset_path): a file (the evaluation split) or a directory of splits; with several tasks, TASK=PATH", AllowMultipleArgumentsPerToken = false };
        var output = new Option<string?>("--output") { Description = "Directory for results.json and samples_TASK.jsonl (created; files are replaced)" };
        var limit = new Option<double?>("--limit") { Description = "Evaluate the first N documents of each task (a value below 1: that share)" };
        var numFewshot = new Option<int?>("--num-fewshot") { Description = "Few-shot examples per prompt (default: the task's num_fewshot)" };
        var chat = new Option<bool>("--apply-chat-template") { Description = "Render each prompt as a user turn with the model's chat template and its generation prompt" };
        var multiturn = new Option<bool>("--fewshot-as-multiturn") { Description = "With --apply-chat-template: few-shot examples as earlier user/assistant turns" };
        var system = new Option<string?>("--system-instruction") { Description = "A system instruction placed before the task's description" };
        var batchSize = new Option<int>("--batch-size") { Description = "Sequences per forward pass / decoded together", DefaultValueFactory = _ => 16 };
        var seed = new Option<long>("--seed") { Description = "Few-shot sampling seed (lm-eval's fewshot seed) and sampling seed", DefaultValueFactory = _ => 1234 };
        var endpoint = new Option<string?>("--endpoint") { Description = "Evaluate the model an OpenAI-compatible server serves (vLLM, posttrain serve), e.g. http://127.0.0.1:8000, as lm-eval's local-completions" };
        var endpointModel = new Option<string?>("--endpoint-model") { Description = "The model name on --endpoint (default: the first of /v1/models)" };
        var endpointKey = new Option<string?>("--endpoint-api-key") { Description = "Bearer token for --endpoint" };
        var endpointTimeout = new Option<double>("--endpoint-timeout") { Description = "Seconds one request to --endpoint may take", DefaultValueFactory = _ => 600 };
        var responses = new Option<string?>("--responses") { Description = "Score responses generated elsewhere ({\"doc_id\", \"resps\"} JSONL) without running a model: filters and metrics only (one task)" };

        var command = new Command("eval", "Evaluate a model on lm-evaluation-harness tasks (log-likelihood multiple choice, generate-until with filters)")
        {
            tasks, data, output, limit, numFewshot, chat, multiturn, system, batchSize, seed, responses, endpoint, endpointModel, endpointKey, endpointTimeout,
        };
        model.AddTo(command);
        command.SetAction(result => Verbs.Guard(result, stdout =>
        {
            var taskNames = result.GetValue(tasks)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (taskNames.Length == 0) throw new InputError("--tasks: no task named");
            var limitValue = result.GetValue(limit);
            if (limitValue is <= 0) throw new InputError("--limit: must be positive");
            var shots = result.GetValue(numFewshot);
            if (shots is < 0) throw new InputError("--num-fewshot: must not be negative");
            var responsesPath = result.GetValue(responses);
            if (responsesPath is not null && taskNames.Length != 1) throw new InputError("--responses: give exactly one task");
            bool applyChat = result.GetValue(chat);
            if (result.GetValue(multiturn) && !applyChat) throw new InputError("--fewshot-as-multiturn: needs --apply-chat-template");
            var prompt = new EvalTask.PromptOptions(result.GetValue(system), applyChat, result.GetValue(multiturn), result.GetValue(seed));
            var (dataByTask, singleData) = DataPaths(result.GetValue(data) ?? [], taskNames);
            var usedData = new Dictionary<string, string>();
            var variables = model.ReadTemplateVariables(result);
            if (variables.Count > 0 && !applyChat) throw new InputError("--chat-template-kwargs: needs --apply-chat-template");

            // Read every task and its documents before loading the model.
            var evalTasks = new List<EvalTask>();
            foreach (var name in taskNames)
            {
                var task = EvalTask.Load(name, shots);
                if (evalTasks.Any(t => t.Name == task.Name)) throw new InputError($"--tasks: {task.Name} is named twice");
                var key = dataByTask.ContainsKey(name) ? name : dataByTask.ContainsKey(task.Name) ? task.Name : null;
                var taskData = key is null ? singleData : dataByTask[key];
                if (key is not null) dataByTask.Remove(key);
                if (taskData is not null) usedData[task.Name] = taskData;
                task.LoadDocuments(taskData, limitValue);
                if (task.Docs.Count == 0) throw new InputError($"{task.Name}: the evaluation split has no documents");
                evalTasks.Add(task);
            }
            if (dataByTask.Count > 0) throw new InputError($"--data: {dataByTask.Keys.First()} is not one of the tasks ({string.Join(", ", evalTasks.Select(t => t.Name))})");

            var endpointUrl = result.GetValue(endpoint);
            if (endpointUrl is not null && responsesPath is not null) throw new InputError("--endpoint: not with --responses (which scores responses without a model)");
            if (endpointUrl is null && (result.GetValue(endpointModel) ?? result.GetValue(endpointKey)) is not null)
                throw new InputError("--endpoint-model, --endpoint-api-key: need --endpoint");
            var modelDirGiven = result.GetValue(model.Model);
            string? modelDir = null, adapterDir = null;
            if (modelDirGiven is not null) (modelDir, adapterDir) = model.Read(result);
            else if (responsesPath is null && endpointUrl is null) throw new InputError("--model: required (or --endpoint URL, or --responses FILE to score responses without a model)");
            if (endpointUrl is not null && adapterDir is not null) throw new InputError("--adapter: with --endpoint the server holds the model (load the adapter there)");
            var dtype = model.ReadDtype(result);
            var outputDir = result.GetValue(output);
            int batch = result.GetValue(batchSize);
            if (batch <= 0) throw new InputError("--batch-size: must be positive");

            var results = new List<TaskResult>();
            string? servedModel = null;
            void EvaluateAll(IEvalModel evalModel)
            {
                foreach (var task in evalTasks)
                {
                    var clock = System.Diagnostics.Stopwatch.StartNew();
                    var r = Evaluator.Evaluate(task, evalModel, prompt);
                    stdout.WriteLine($"{task.Name}: {task.Docs.Count} documents in {clock.Elapsed.TotalSeconds:F1} s"
                        + (r.Truncated > 0 ? $"; {r.Truncated} requests longer than the model's context were cut from the left" : ""));
                    results.Add(r);
                }
            }
            if (endpointUrl is not null)
            {
                double timeout = result.GetValue(endpointTimeout);
                if (!(timeout > 0 && double.IsFinite(timeout))) throw new InputError("--endpoint-timeout: must be a positive number of seconds");
                using var client = new Remote.OpenAiClient(Remote.OpenAiClient.Normalize(endpointUrl, "--endpoint"), result.GetValue(endpointKey), timeout,
                    timeoutOption: "endpoint-timeout");
                servedModel = result.GetValue(endpointModel) ?? client.FirstModel();
                EvalTokenizer? encoder = modelDir is null ? null : new EvalTokenizer(GenerateCommand.Tokenizer(modelDir, "evaluation"));
                ChatTemplate? template = null;
                Func<ChatTemplate>? templateOf = modelDir is null ? null : () => template ??= ChatTemplate.FromModelDirectory(modelDir);
                EvaluateAll(new EndpointEvalModel(client, servedModel, encoder, templateOf, variables, batch, result.GetValue(seed)));
            }
            else if (responsesPath is not null)
            {
                Func<JsonArray, string>? chatTemplate = null;
                if (modelDir is not null && applyChat)
                {
                    var template = ChatTemplate.FromModelDirectory(modelDir);
                    chatTemplate = messages => ChatPrompt.Render(template, messages, null, variables, addGenerationPrompt: true, "--apply-chat-template");
                }
                results.Add(Evaluator.ScoreResponses(evalTasks[0], responsesPath, prompt, chatTemplate));
            }
            else
            {
                var tokenizer = GenerateCommand.Tokenizer(modelDir!, "evaluation");
                ChatTemplate? template = null;
                using var lm = ModelArgs.Load(modelDir!, adapterDir, dtype);
                EvaluateAll(new LocalEvalModel(lm, tokenizer, () => template ??= ChatTemplate.FromModelDirectory(modelDir!), batch, result.GetValue(seed), variables));
            }

            var config = new JsonObject
            {
                ["model"] = modelDir,
                ["adapter"] = adapterDir,
                ["dtype"] = result.GetValue(model.Dtype),
                ["tasks"] = new JsonArray(taskNames.Select(t => (JsonNode)JsonValue.Create(t)).ToArray()),
                ["data"] = new JsonObject(usedData.Select(kv => new KeyValuePair<string, JsonNode?>(kv.Key, kv.Value))),
                ["limit"] = limitValue,
                ["num_fewshot"] = shots,
                ["apply_chat_template"] = applyChat,
                ["fewshot_as_multiturn"] = prompt.FewshotAsMultiturn,
                ["system_instruction"] = prompt.SystemInstruction,
                ["chat_template_kwargs"] = new JsonObject(variables.Select(kv => new KeyValuePair<string, JsonNode?>(kv.Key, ((JsonNode?)kv.Value)?.DeepClone()))),
                ["batch_size"] = batch,
                ["seed"] = prompt.FewshotSeed,
                ["responses"] = responsesPath,
            };
            if (endpointUrl is not null)
            {
                config["endpoint"] = Remote.OpenAiClient.Normalize(endpointUrl, "--endpoint");
                config["endpoint_model"] = servedModel;
            }
            if (outputDir is not null) Evaluator.Write(outputDir, results, config);
            stdout.Write(Evaluator.Table(results));
            if (outputDir is not null) stdout.WriteLine($"Wrote {Path.Combine(outputDir, "results.json")} and the samples_TASK.jsonl files");
            return 0;
        }));
        return command;
    }

    /// <summary>
    /// --data values: a path for the one task, or TASK=PATH where TASK is a --tasks item or the
    /// name its task file gives (task:).
    /// </summary>
    static (Dictionary<string, string> ByTask, string? Single) DataPaths(string[] values, string[] taskNames)
    {
        var byTask = new Dictionary<string, string>();
        string? single = null;
        foreach (var v in values)
        {
            int eq = v.IndexOf('=');
            if (eq > 0 && !File.Exists(v) && !Directory.Exists(v)) byTask[v[..eq]] = v[(eq + 1)..];
            else if (taskNames.Length == 1) single = v;
            else throw new InputError($"--data: with several tasks, give TASK=PATH ({string.Join(", ", taskNames)})");
        }
        return (byTask, single);
    }
}
