// Shared helpers of the compute shaders.

// The workgroup's index in a grid laid out as (x, y) to stay within maxComputeWorkGroupCount[0]
// (65535 at least): group = x + y * num_x. The host rounds the grid up, so a shader compares the
// result with its own count and returns early (uniformly for the whole workgroup).
uint group_linear() {
    return gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
}
