namespace PostTrain.Training;

/// <summary>
/// transformers' schedules with linear warmup: the multiplier of the base learning rate for the
/// optimiser step <c>step</c> (0-based): step/warmup during warmup, then constant, linear decay to
/// 0 at <c>total</c>, or half a cosine to 0.
/// </summary>
public sealed record LearningRateSchedule(double BaseLearningRate, LrScheduler Kind, int WarmupSteps, int TotalSteps)
{
    public static LearningRateSchedule For(TrainingOptions o, int totalSteps)
    {
        int warmup = o.WarmupSteps > 0 ? o.WarmupSteps : (int)Math.Ceiling(o.WarmupRatio * totalSteps);
        return new LearningRateSchedule(o.LearningRate, o.LrScheduler, warmup, totalSteps);
    }

    public double At(int step)
    {
        if (step < WarmupSteps) return BaseLearningRate * step / Math.Max(1, WarmupSteps);
        double progress = (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
        return Kind switch
        {
            LrScheduler.Constant => BaseLearningRate,
            LrScheduler.Linear => BaseLearningRate * Math.Max(0.0, (double)(TotalSteps - step) / Math.Max(1, TotalSteps - WarmupSteps)),
            _ => BaseLearningRate * Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * progress))),
        };
    }
}
