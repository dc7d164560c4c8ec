/** Join a customer with their orders: the enriched customer record (an example derivation step). */
export interface Customer {
  readonly id: number;
  readonly name: string;
}

export interface Orders {
  readonly items: readonly { readonly sku: string; readonly amount: number }[];
}

export default function enrich([customer, orders]: [Customer, Orders]) {
  const lifetimeValue = orders.items.reduce((sum, item) => sum + item.amount, 0);
  return { ...customer, orders: orders.items.length, lifetimeValue, tier: lifetimeValue >= 100 ? 'gold' : 'standard' };
}
