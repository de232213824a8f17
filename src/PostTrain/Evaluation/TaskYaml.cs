using System.Globalization;
using System.Reflection;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace PostTrain.Evaluation;

/// <summary>
/// An lm-evaluation-harness task file read as PyYAML reads it: plain scalars typed by YAML 1.1's
/// rules (true/false/yes/no, null/~, integers, floats with a dot), `!function NAME` kept as a
/// marker object, and `include: OTHER.yaml` (relative to the file) merged underneath the file's
/// own keys. Every top-level key remembers its line, so an error names file, line and field.
/// </summary>
public sealed class TaskYaml
{
    /// <summary>The key that marks a `!function NAME` value: {"!function": "utils.process_docs"}.</summary>
    public const string FunctionKey = "!function";

    public string File { get; }
    public JsonObject Fields { get; }
    readonly Dictionary<string, (string File, long Line)> where;

    TaskYaml(string file, JsonObject fields, Dictionary<string, (string, long)> where)
    {
        File = file;
        Fields = fields;
        this.where = where;
    }

    /// <summary>An error naming the file and line of a top-level field (or the file alone).</summary>
    public InputError Error(string? field, string message)
    {
        var top = field is null ? null : Regex.Match(field, @"^[^.\[]+").Value;
        if (top is not null && where.TryGetValue(top, out var w)) return InputError.At(w.File, w.Line, field, message);
        return InputError.At(File, null, field, message);
    }

    /// <summary>
    /// Names of the task files that ship with PostTrain (lm-eval's YAMLs for gsm8k, mmlu, arc,
    /// hellaswag, ifeval, and a math task), without their extension.
    /// </summary>
    public static IReadOnlyList<string> BuiltInNames =>
        BuiltInResources.Keys.Where(k => !Path.GetFileName(k).StartsWith('_')).Select(Path.GetFileNameWithoutExtension).Order().ToList()!;

    static readonly Assembly Assembly = typeof(TaskYaml).Assembly;
    const string ResourcePrefix = "PostTrain.Evaluation.Tasks.";

    /// <summary>Embedded task files by file name ("gsm8k.yaml").</summary>
    static readonly Dictionary<string, string> BuiltInResources = Assembly.GetManifestResourceNames()
        .Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal))
        .ToDictionary(n => n[ResourcePrefix.Length..], n => n);

    /// <summary>
    /// Loads a task by built-in name ("gsm8k") or from a YAML file path. Built-in files are
    /// shown as "builtin:NAME.yaml" in errors.
    /// </summary>
    public static TaskYaml Load(string nameOrPath)
    {
        if (BuiltInResources.ContainsKey(nameOrPath + ".yaml") && !System.IO.File.Exists(nameOrPath))
            return LoadSource("builtin:" + nameOrPath + ".yaml", []);
        if (!nameOrPath.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) && !nameOrPath.EndsWith(".yml", StringComparison.OrdinalIgnoreCase))
            throw new InputError($"--tasks: '{nameOrPath}' is neither a built-in task ({string.Join(", ", BuiltInNames)}) nor a .yaml file");
        if (!System.IO.File.Exists(nameOrPath)) throw InputError.FileNotFound(nameOrPath);
        return LoadSource(nameOrPath, []);
    }

    static string ReadSource(string source)
    {
        if (source.StartsWith("builtin:", StringComparison.Ordinal))
        {
            var name = source["builtin:".Length..];
            if (!BuiltInResources.TryGetValue(name, out var resource)) throw new InputError($"{source}: no such built-in task file");
            using var stream = Assembly.GetManifestResourceStream(resource)!;
            using var reader = new StreamReader(stream);
            return reader.ReadToEnd();
        }
        try
        {
            return System.IO.File.ReadAllText(source);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InputError($"{source}: cannot read: {e.Message}");
        }
    }

    static string ResolveInclude(string from, string include)
    {
        if (from.StartsWith("builtin:", StringComparison.Ordinal)) return "builtin:" + Path.GetFileName(include);
        return Path.Combine(Path.GetDirectoryName(Path.GetFullPath(from))!, include);
    }

    static TaskYaml LoadSource(string source, HashSet<string> seen)
    {
        if (!seen.Add(source)) throw new InputError($"{source}: include cycle");
        var yaml = new YamlStream();
        try
        {
            yaml.Load(new StringReader(ReadSource(source)));
        }
        catch (YamlException e)
        {
            throw InputError.At(source, e.Start.Line, null, $"not valid YAML: {e.Message}");
        }
        if (yaml.Documents.Count == 0 || yaml.Documents[0].RootNode is not YamlMappingNode root)
            throw new InputError($"{source}: expected a mapping of task fields");

        var fields = new JsonObject();
        var where = new Dictionary<string, (string, long)>();
        foreach (var (keyNode, valueNode) in root.Children)
        {
            if (keyNode is not YamlScalarNode { Value: { } key })
                throw InputError.At(source, keyNode.Start.Line, null, "expected a field name");
            fields[key] = Convert(valueNode, source);
            where[key] = (source, valueNode.Start.Line);
        }
        if (fields["include"] is JsonValue include && include.TryGetValue<string>(out var includeName))
        {
            var baseYaml = LoadSource(ResolveInclude(source, includeName), seen);
            var merged = (JsonObject)baseYaml.Fields.DeepClone();
            var mergedWhere = new Dictionary<string, (string, long)>(baseYaml.where);
            foreach (var (k, v) in fields)
            {
                if (k == "include") continue;
                merged[k] = v?.DeepClone();
                mergedWhere[k] = where[k];
            }
            return new TaskYaml(source, merged, mergedWhere);
        }
        if (fields.ContainsKey("include")) throw InputError.At(source, where["include"].Item2, "include", "expected a file name");
        return new TaskYaml(source, fields, where);
    }

    static JsonNode? Convert(YamlNode node, string source)
    {
        switch (node)
        {
            case YamlMappingNode map:
                var o = new JsonObject();
                foreach (var (k, v) in map.Children)
                {
                    if (k is not YamlScalarNode { Value: { } key }) throw InputError.At(source, k.Start.Line, null, "expected a field name");
                    o[key] = Convert(v, source);
                }
                return o;
            case YamlSequenceNode seq:
                return new JsonArray(seq.Children.Select(c => Convert(c, source)).ToArray());
            case YamlScalarNode scalar:
                if (scalar.Tag.IsEmpty || scalar.Tag.IsNonSpecific)
                    return scalar.Style == ScalarStyle.Plain ? PlainScalar(scalar.Value ?? "") : JsonValue.Create(scalar.Value ?? "");
                if (scalar.Tag.Value == "!function")
                    return new JsonObject { [FunctionKey] = scalar.Value ?? "" };
                if (scalar.Tag.Value != "tag:yaml.org,2002:str")
                    throw InputError.At(source, scalar.Start.Line, null, $"unsupported YAML tag {scalar.Tag.Value}");
                return JsonValue.Create(scalar.Value ?? "");
            default:
                throw InputError.At(source, node.Start.Line, null, "unsupported YAML node (anchors and aliases are not read)");
        }
    }

    /// <summary>A plain scalar typed as PyYAML's resolver types it (YAML 1.1).</summary>
    static JsonNode? PlainScalar(string s)
    {
        if (s is "" or "~" or "null" or "Null" or "NULL") return null;
        if (s is "true" or "True" or "TRUE" or "yes" or "Yes" or "YES" or "on" or "On" or "ON") return JsonValue.Create(true);
        if (s is "false" or "False" or "FALSE" or "no" or "No" or "NO" or "off" or "Off" or "OFF") return JsonValue.Create(false);
        if (Regex.IsMatch(s, @"^[-+]?(0|[1-9][0-9_]*)$") && long.TryParse(s.Replace("_", ""), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l))
            return JsonValue.Create(l);
        if (Regex.IsMatch(s, @"^[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+][0-9]+)?$") && s.Any(char.IsDigit)
            && double.TryParse(s.Replace("_", ""), NumberStyles.Float, CultureInfo.InvariantCulture, out var d))
            return JsonValue.Create(d);
        return JsonValue.Create(s);
    }
}
