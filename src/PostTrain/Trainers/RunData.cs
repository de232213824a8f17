using PostTrain.Training;

namespace PostTrain.Trainers;

/// <summary>A run's --data and --eval-data, loaded the same way by every method's run.</summary>
public static class RunData
{
    /// <summary>
    /// Loads --data and, when given, --eval-data with <paramref name="load"/>, saying how many
    /// invalid records --skip-invalid dropped from each.
    /// </summary>
    public static (T Train, T? Eval) Load<T>(TrainingOptions options, Func<string, T> load, Func<T, int> skipped, TextWriter log) where T : class
    {
        var train = load(options.Data!);
        if (skipped(train) > 0) log.WriteLine($"Skipped {skipped(train)} invalid records of {options.Data}");
        var eval = options.EvalData is null ? null : load(options.EvalData);
        if (eval is not null && skipped(eval) > 0) log.WriteLine($"Skipped {skipped(eval)} invalid records of {options.EvalData}");
        return (train, eval);
    }
}
