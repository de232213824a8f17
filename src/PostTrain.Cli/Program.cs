using TorchSharp;
Console.WriteLine($"posttrain (libtorch {torch.__version__})");
