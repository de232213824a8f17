using static TorchSharp.torch;

namespace PostTrain.Data;

/// <summary>Turns token sequences into padded batch tensors.</summary>
public static class Batching
{
    /// <summary>
    /// Right-pads sequences into [batch, maxLen] input ids and a 1/0 attention mask. With right
    /// padding a real token never attends to a pad (attention is causal), and positions 0..n-1
    /// are each sequence's own, so every sequence scores exactly as it would alone.
    /// </summary>
    public static (Tensor InputIds, Tensor AttentionMask) RightPad(IReadOnlyList<int[]> sequences, int padId = 0)
    {
        int rows = sequences.Count, width = sequences.Max(s => s.Length);
        var ids = new long[rows * width];
        var mask = new long[rows * width];
        for (int r = 0; r < rows; r++)
        {
            var s = sequences[r];
            for (int c = 0; c < width; c++)
            {
                ids[r * width + c] = c < s.Length ? s[c] : padId;
                mask[r * width + c] = c < s.Length ? 1 : 0;
            }
        }
        return (tensor(ids, [rows, width]), tensor(mask, [rows, width]));
    }

    /// <summary>
    /// Left-pads sequences, returning ids, attention mask and position ids that count from 0 at
    /// each sequence's first real token (as generation does), so each row scores as if alone.
    /// </summary>
    public static (Tensor InputIds, Tensor AttentionMask, Tensor PositionIds) LeftPad(IReadOnlyList<int[]> sequences, int padId = 0)
    {
        int rows = sequences.Count, width = sequences.Max(s => s.Length);
        var ids = new long[rows * width];
        var mask = new long[rows * width];
        var positions = new long[rows * width];
        for (int r = 0; r < rows; r++)
        {
            var s = sequences[r];
            int pad = width - s.Length;
            for (int c = 0; c < width; c++)
            {
                bool real = c >= pad;
                ids[r * width + c] = real ? s[c - pad] : padId;
                mask[r * width + c] = real ? 1 : 0;
                positions[r * width + c] = real ? c - pad : 0;
            }
        }
        return (tensor(ids, [rows, width]), tensor(mask, [rows, width]), tensor(positions, [rows, width]));
    }

    /// <summary>
    /// Packs sequences one after another into a single row with position ids restarting at 0 for
    /// each: the model then attends only within each sequence.
    /// </summary>
    public static (Tensor InputIds, Tensor PositionIds) Pack(IReadOnlyList<int[]> sequences)
    {
        var ids = sequences.SelectMany(s => s.Select(i => (long)i)).ToArray();
        var positions = sequences.SelectMany(s => Enumerable.Range(0, s.Length).Select(i => (long)i)).ToArray();
        return (tensor(ids, [1, ids.Length]), tensor(positions, [1, positions.Length]));
    }
}
