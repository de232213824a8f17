using System.Text.Json;
using System.Text.Json.Nodes;

namespace PostTrain.Benchmarks;

/// <summary>A measurement that prints its results as one JSON object.</summary>
public interface IBenchmark
{
    string Name { get; }
    string Description { get; }
    JsonObject Run(string[] args);
}

public static class Program
{
    static readonly IBenchmark[] All =
    [
        new ModelBenchmark(),
        new GenerationBenchmark(),
        new SftBenchmark(),
        new GrpoBenchmark(),
        new PpoBenchmark(),
        new TokenizerBenchmark(),
        new EvalBenchmark(),
        new BpeTrainBenchmark(),
        new ServeBenchmark(),
    ];

    public static int Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help")
        {
            Console.Error.WriteLine("usage: PostTrain.Benchmarks NAME [options]   (run in Release)");
            foreach (var b in All) Console.Error.WriteLine($"  {b.Name,-16} {b.Description}");
            return args.Length == 0 ? 2 : 0;
        }
        var bench = All.FirstOrDefault(b => b.Name == args[0]);
        if (bench is null)
        {
            Console.Error.WriteLine($"error: unknown benchmark '{args[0]}'");
            return 2;
        }
        var result = bench.Run(args[1..]);
        result["benchmark"] = bench.Name;
        Console.WriteLine(result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }
}
