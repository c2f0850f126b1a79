struct Counter(u64);

impl Counter {
    #[mpreg::register]
    fn get(&self) -> u64 {
        self.0
    }
}

fn main() {}
