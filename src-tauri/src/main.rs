// No console window is a Windows concern; on Linux this is a plain binary.
fn main() {
    culvert_app::run();
}
