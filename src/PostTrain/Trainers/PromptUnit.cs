using System.Text.Json;
using System.Text.Json.Nodes;
using PostTrain.Data;
using PostTrain.Generation;
using PostTrain.Models;
using PostTrain.Rewards;
using PostTrain.Training;
using static TorchSharp.torch;

namespace PostTrain.Trainers;

/// <summary>A prompt ready for sampling: its token ids, the text rewards see, and its dataset row.</summary>
public sealed record PromptUnit(int Index, int[] Ids, string Text, PromptExample Example);
