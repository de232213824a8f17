using System.CommandLine;
using PostTrain.Cli.Serving;
using PostTrain.Models;
using PostTrain.Serving;
using PostTrain.Tokenization;

namespace PostTrain.Cli.Commands;

/// <summary>
/// `posttrain serve`: the model over the OpenAI API (vLLM's extensions included) until SIGTERM
/// or Ctrl+C, which stop accepting, let requests in flight finish, and exit 0.
/// </summary>
public static class ServeCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Model directory (Hugging Face layout with tokenizer.json)", Required = true };
        var adapters = new Option<string[]>("--adapter") { Description = "A LoRA adapter served by name: NAME=DIR (repeatable); requests name it as their model", AllowMultipleArgumentsPerToken = false };
        var host = new Option<string>("--host") { Description = "Address to listen on (0.0.0.0 for every interface)", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port to listen on (0: any free port, printed at start)", DefaultValueFactory = _ => 8000 };
        var apiKey = new Option<string?>("--api-key") { Description = "Require \"Authorization: Bearer KEY\" on /v1 requests" };
        var maxBatch = new Option<int>("--max-batch") { Description = "Most sequences decoded together (vLLM's --max-num-seqs); requests join and leave between steps", DefaultValueFactory = _ => 16 };
        var maxModelLen = new Option<int>("--max-model-len") { Description = "Most tokens per sequence, prompt and completion (default: the model's context, at most 2048); sizes the KV cache" };
        var dtype = new Option<string>("--dtype") { Description = "dtype the model runs in: float32, bfloat16 or float16 (f32, bf16, f16)", DefaultValueFactory = _ => "float32" };
        var name = new Option<string?>("--served-model-name") { Description = "The base model's name in requests and /v1/models (default: the directory's name)" };
        var toolParser = new Option<string?>("--tool-call-parser") { Description = "hermes: <tool_call> blocks in chat answers become tool_calls when the request has tools (Qwen's and Hermes' format, vLLM's parser of that name)" };
        var kwargs = new Option<string[]>("--chat-template-kwargs") { Description = "Chat-template variables for every conversation: KEY=JSON (repeatable) or a JSON object; a request's chat_template_kwargs override them" };
        var command = new Command("serve", "Serve a model over the OpenAI API (completions, chat, streaming, LoRA adapters; vLLM-compatible) with continuous batching")
        {
            model, adapters, host, port, apiKey, maxBatch, maxModelLen, dtype, name, kwargs, toolParser,
        };
        command.SetAction(result => Verbs.Guard(result, stdout =>
        {
            var named = new List<(string, string)>();
            foreach (var item in result.GetValue(adapters) ?? [])
            {
                int eq = item.IndexOf('=');
                if (eq <= 0 || eq == item.Length - 1) throw new InputError($"--adapter: '{item}': expected NAME=DIR");
                named.Add((item[..eq], item[(eq + 1)..]));
            }
            var variables = ChatTemplateKwargs.Parse(result.GetValue(kwargs) ?? [], "--chat-template-kwargs");
            var engineOptions = new ServingEngineOptions { MaxBatch = result.GetValue(maxBatch), MaxModelLength = result.GetValue(maxModelLen) };
            if (engineOptions.MaxBatch <= 0) throw new InputError($"--max-batch: must be positive, got {engineOptions.MaxBatch}");
            using var served = ServedModel.Load(result.GetValue(model)!, Dtypes.Parse(result.GetValue(dtype), "--dtype"), engineOptions, result.GetValue(name), variables);
            var options = new ServerOptions { Host = result.GetValue(host)!, Port = result.GetValue(port), ApiKey = result.GetValue(apiKey), ToolCallParser = result.GetValue(toolParser) };
            var server = OpenAiServer.StartAsync(served, options, named).GetAwaiter().GetResult();
            var adapterList = served.Engine.Adapters;
            stdout.WriteLine($"Serving {served.Name} on {server.Address.ToString().TrimEnd('/')} (max batch {served.Engine.MaxBatch}, max model length {served.Engine.MaxModelLength}" +
                             (adapterList.Count > 0 ? $", adapters: {string.Join(", ", adapterList)})" : ")"));
            stdout.Flush();
            server.WaitForShutdownAsync().GetAwaiter().GetResult();
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
            var stats = served.Engine.Stats;
            stdout.WriteLine($"Stopped after {stats.Requests} requests ({stats.GeneratedTokens} tokens generated).");
            return 0;
        }));
        return command;
    }
}
