// placeholder until the .npy reader lands
namespace tapegrad {}
